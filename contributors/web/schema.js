// The session's table schema in the page: reads one cell's text as a typed value of its column
// and says in one sentence what is wrong with it. The same checks run on typed, pasted and
// uploaded cells, before anything is encrypted or sent; the provider checks again.

const DECIMAL_TYPE = /^(?:decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$/i;
const INT_TYPES = new Set(["int", "integer", "bigint", "smallint"]);
const FLOAT_TYPES = new Set(["float", "double", "real", "decimal", "numeric"]);
const BOOL_TYPES = new Set(["bool", "boolean"]);
// digits an int column without a declared range may have: keeps v * 2^32 far inside the field
const MAX_UNBOUNDED_DIGITS = 15;
const NUMBER_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?$/;
const GROUPED_NUMBER_TEXT = /^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$/;

/**
 * The kind of a column from the session's column description: {kind, precision?, scale?}.
 * kind is "category", "int", "decimal", "float" or "bool"; throws on a type the page cannot encode.
 */
export function columnKind(column) {
  const type = String(column.type ?? "").trim().toLowerCase();
  if (Array.isArray(column.values)) return { kind: "category" };
  const decimal = DECIMAL_TYPE.exec(type);
  if (decimal) return { kind: "decimal", precision: Number(decimal[1]), scale: Number(decimal[2]) };
  if (INT_TYPES.has(type)) return { kind: "int" };
  if (FLOAT_TYPES.has(type)) return { kind: "float" };
  if (BOOL_TYPES.has(type)) return { kind: "bool" };
  throw new Error(`column ${column.name} has type ${column.type}, which this page cannot take`);
}

/** True when a cell holds nothing but blanks. */
export function isBlank(text) {
  return text === undefined || text === null || String(text).trim() === "";
}

/**
 * A decimal text read exactly: {negative, digits (BigInt of all digits), scale (digits after
 * the point)}, or null when the text is not a plain number. Thousands separators are accepted
 * as spreadsheets paste them ("1,234.50").
 */
export function parseDecimalText(text) {
  let clean = String(text).trim().replace(/\s+/g, "");
  if (GROUPED_NUMBER_TEXT.test(clean)) clean = clean.replace(/,/g, "");
  const match = NUMBER_TEXT.exec(clean);
  if (!match || (match[2] === "" && (match[3] ?? "") === "")) return null;
  const fraction = match[3] ?? "";
  const digits = BigInt((match[2] || "0") + fraction);
  return { negative: match[1] === "-" && digits !== 0n, digits, scale: fraction.length,
           integerDigits: (match[2] || "0").replace(/^0+(?=\d)/, "").length };
}

/** The exact rational value of a parsed decimal compared with a JS number bound (-1, 0, 1). */
function compareWithBound(parsed, bound) {
  // a JSON bound may be a float (1e7 as 10000000.0): written out in full, never as 1e+21
  const boundParsed = parseDecimalText(typeof bound === "number"
    ? bound.toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 20 })
    : String(bound));
  const scale = Math.max(parsed.scale, boundParsed.scale);
  const scaled = (p) => (p.negative ? -1n : 1n) * p.digits * 10n ** BigInt(scale - p.scale);
  const a = scaled(parsed), b = scaled(boundParsed);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The allowed value a categorical cell names (case and surrounding blanks ignored), or null. */
function matchCategory(column, text) {
  const wanted = String(text).trim().toLowerCase();
  const index = column.values.findIndex((v) => String(v).toLowerCase() === wanted);
  return index < 0 ? null : index;
}

function listValues(values) {
  return values.length <= 8 ? values.join(", ") : `${values.slice(0, 8).join(", ")}, ...`;
}

/**
 * Reads one non-blank cell: {value} on success, where value is {category: index} or
 * {decimal: parsed decimal}; {error: "one sentence"} otherwise.
 */
export function readCell(column, text) {
  const kind = columnKind(column);
  if (kind.kind === "category") {
    const index = matchCategory(column, text);
    return index === null
      ? { error: `"${String(text).trim()}" is not one of ${listValues(column.values)}` }
      : { value: { category: index } };
  }
  if (kind.kind === "bool") {
    const word = String(text).trim().toLowerCase();
    if (["true", "yes", "1"].includes(word)) return { value: { decimal: parseDecimalText("1") } };
    if (["false", "no", "0"].includes(word)) return { value: { decimal: parseDecimalText("0") } };
    return { error: `"${String(text).trim()}" is not yes or no` };
  }
  const parsed = parseDecimalText(text);
  if (!parsed) return { error: `"${String(text).trim()}" is not a number` };
  if (kind.kind === "int") {
    if (parsed.digits % 10n ** BigInt(parsed.scale) !== 0n) {
      return { error: `${String(text).trim()} is not a whole number` };
    }
    if (column.min === undefined && column.max === undefined
        && parsed.integerDigits > MAX_UNBOUNDED_DIGITS) {
      return { error: `${String(text).trim()} has more than ${MAX_UNBOUNDED_DIGITS} digits` };
    }
  }
  if (kind.kind === "decimal") {
    const significantScale = String(parsed.digits % 10n ** BigInt(parsed.scale))
      .padStart(parsed.scale, "0").replace(/0+$/, "").length;
    if (parsed.scale > 0 && significantScale > kind.scale) {
      return { error: `${String(text).trim()} has more than ${kind.scale} decimals` };
    }
    if (parsed.integerDigits > kind.precision - kind.scale) {
      return { error: `${String(text).trim()} has more than ${kind.precision - kind.scale} digits `
                      + "before the decimal point" };
    }
  }
  if (column.min !== undefined && column.min !== null && compareWithBound(parsed, column.min) < 0) {
    return { error: `${String(text).trim()} is below the minimum ${column.min}` };
  }
  if (column.max !== undefined && column.max !== null && compareWithBound(parsed, column.max) > 0) {
    return { error: `${String(text).trim()} is above the maximum ${column.max}` };
  }
  return { value: { decimal: parsed } };
}

/**
 * Checks a whole table of cell texts (rows of {column name: text}): blank rows are left out,
 * a blank cell in a filled row is an error. Returns {rows: [{position, values}], problems:
 * [{position, column, message}], blankRows}, positions counting from 1 as the grid shows them.
 */
export function checkTable(columns, rowTexts) {
  const rows = [], problems = [];
  let blankRows = 0;
  rowTexts.forEach((texts, i) => {
    const position = i + 1;
    if (columns.every((c) => isBlank(texts[c.name]))) { blankRows += 1; return; }
    const values = [];
    for (const column of columns) {
      const text = texts[column.name];
      const read = isBlank(text) ? { error: "missing value" } : readCell(column, text);
      if (read.error) problems.push({ position, column: column.name, message: read.error });
      values.push(read.value);
    }
    rows.push({ position, values });
  });
  return { rows, problems, blankRows };
}
