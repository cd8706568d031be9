// Builds the body of POST /api/submit: the table's shares for each compute server, sealed
// (libsodium crypto_box_seal) to that server's public key, so the provider that stores the
// submission can read none of it. Only sealed boxes leave the page.
import sodiumModule from "./vendor/libsodium-wrappers.js";
import { shareTable } from "./shares.js";

const KEY_BYTES = 32;
// the prime of MPyC's SecFxp(96, 32) field and its fraction bits (the contract): pinned, so a
// provider cannot make the page share in another ring, where Shamir sharing would not hide
const FIELD_MODULUS = "1461501637330902918203684832716283019655932542919";
const FRAC_BITS = 32;

/** Refuses a session whose server set or threshold would let too few servers learn a value. */
export function checkSessionSafety(session) {
  const servers = session.servers ?? [];
  const t = session.field?.threshold;
  if (servers.length < 3) {
    throw new Error(`the session lists ${servers.length} compute servers; at least 3 are needed`);
  }
  if (t !== Math.floor((servers.length - 1) / 2) || t < 1) {
    throw new Error(`the session's threshold ${t} does not fit its ${servers.length} servers`);
  }
  if (String(session.field?.modulus) !== FIELD_MODULUS || session.field?.frac_bits !== FRAC_BITS) {
    throw new Error("the session's field is not the one the compute servers use");
  }
  if (new Set(servers.map((s) => s.name)).size !== servers.length) {
    throw new Error("the session lists a compute server twice");
  }
}

async function sodiumReady() {
  await sodiumModule.ready;
  return sodiumModule;
}

/** A server's X25519 public key from base64 (standard or URL-safe); throws unless 32 bytes. */
function publicKeyBytes(sodium, server) {
  const text = String(server.public_key ?? "").trim().replace(/-/g, "+").replace(/_/g, "/");
  let key;
  try {
    key = sodium.from_base64(text.replace(/=+$/, ""), sodium.base64_variants.ORIGINAL_NO_PADDING);
  } catch {
    key = null;
  }
  if (!key || key.length !== KEY_BYTES) {
    throw new Error(`the public key of server ${server.name} is not a 32-byte key`);
  }
  return key;
}

/**
 * The JSON body of a submission of typedRows ([[typed value per column] per row]) under the
 * participation code: {code, rows, shares: {server name: base64 sealed box}}.
 */
export async function sealSubmission(session, code, typedRows) {
  checkSessionSafety(session);
  const sodium = await sodiumReady();
  const columns = session.table.columns.map((c) => c.name);
  const perServer = shareTable(typedRows, columns.length, session.field, session.servers.length);
  const shares = {};
  session.servers.forEach((server, i) => {
    const payload = JSON.stringify({ session: session.name, code, columns,
                                     rows: typedRows.length, shares: perServer[i] });
    const box = sodium.crypto_box_seal(sodium.from_string(payload), publicKeyBytes(sodium, server));
    shares[server.name] = sodium.to_base64(box, sodium.base64_variants.ORIGINAL);
  });
  return { code, rows: typedRows.length, shares };
}
