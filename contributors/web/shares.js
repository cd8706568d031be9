// Fixed-point encoding and Shamir sharing in the field of the session, as MPyC shares a
// SecFxp value: x = round(v * 2^frac_bits) mod p, a random polynomial f of degree t with
// f(0) = x, server i (0-based, in the session's order) gets f(i + 1). Exact BigInt
// arithmetic throughout; randomness from crypto.getRandomValues only.

/** round(v * 2^fracBits) of an exactly parsed decimal (see schema.parseDecimalText), signed. */
export function fixedPoint(parsed, fracBits) {
  const numerator = parsed.digits << BigInt(fracBits);
  const denominator = 10n ** BigInt(parsed.scale);
  // round half up on the magnitude; no ties occur while scale <= fracBits (5^scale is odd)
  const magnitude = (2n * numerator + denominator) / (2n * denominator);
  return parsed.negative ? -magnitude : magnitude;
}

/** The field element of a typed cell value ({category} or {decimal}) as a BigInt in [0, p). */
export function encodeValue(value, modulus, fracBits) {
  const x = value.category !== undefined
    ? BigInt(value.category) << BigInt(fracBits)
    : fixedPoint(value.decimal, fracBits);
  return ((x % modulus) + modulus) % modulus;
}

/** A uniform random BigInt in [0, modulus), by rejection sampling of getRandomValues bytes. */
export function randomBelow(modulus) {
  const bits = modulus.toString(2).length;
  const bytes = new Uint8Array(Math.ceil(bits / 8));
  const topMask = (1 << (bits % 8 || 8)) - 1;
  for (;;) {
    crypto.getRandomValues(bytes);
    bytes[0] &= topMask;
    let candidate = 0n;
    for (const b of bytes) candidate = (candidate << 8n) | BigInt(b);
    if (candidate < modulus) return candidate;
  }
}

/** Shares of the secret x for `parties` servers with threshold t: [f(1), ..., f(parties)]. */
export function shamirShares(secret, threshold, parties, modulus) {
  const coefficients = [secret];
  for (let k = 0; k < threshold; k++) coefficients.push(randomBelow(modulus));
  const shares = [];
  for (let i = 1; i <= parties; i++) {
    const point = BigInt(i);
    let y = 0n;  // Horner from the highest coefficient down
    for (let k = coefficients.length - 1; k >= 0; k--) y = (y * point + coefficients[k]) % modulus;
    shares.push(y);
  }
  return shares;
}

/**
 * Shares a table column by column: typedRows is [[value per column] per row]. Returns, per
 * server, [[decimal string per row] per column], the layout of the sealed payload.
 */
export function shareTable(typedRows, columnCount, field, parties) {
  const modulus = BigInt(field.modulus);
  const perServer = Array.from({ length: parties }, () =>
    Array.from({ length: columnCount }, () => []));
  for (const row of typedRows) {
    for (let c = 0; c < columnCount; c++) {
      const secret = encodeValue(row[c], modulus, field.frac_bits);
      shamirShares(secret, field.threshold, parties, modulus)
        .forEach((share, server) => perServer[server][c].push(share.toString()));
    }
  }
  return perServer;
}
