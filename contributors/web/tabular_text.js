// Turns what a contributor brings (text pasted from Excel, an uploaded CSV or XLSX file) into
// rows of {column name: cell text} for the grid. A first line naming the columns is a header
// (columns are then matched by name, in any order); otherwise cells are taken in order.
import * as XLSX from "./vendor/xlsx.js";
import { columnKind } from "./schema.js";

/** Lines of cells from tab-separated clipboard text (Excel, LibreOffice, Google Sheets). */
export function splitPastedText(text) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  while (lines.length && lines[lines.length - 1].trim() === "") lines.pop();
  return lines.map((line) => line.split("\t"));
}

/** True when every non-blank cell of the line names a column (case ignored). */
function isHeaderLine(columns, line) {
  const names = new Set(columns.map((c) => c.name.toLowerCase()));
  const filled = line.map((cell) => String(cell ?? "").trim().toLowerCase()).filter(Boolean);
  return filled.length > 0 && filled.every((cell) => names.has(cell));
}

/**
 * Rows of {column name: text} from lines of cells. With a header line, every column must be
 * named and no other name may appear; without one, cells fill the columns from firstColumn on.
 * Throws an Error with one sentence when the lines do not fit the table.
 */
export function linesToRows(columns, lines, firstColumn = 0) {
  if (lines.length === 0) return [];
  if (isHeaderLine(columns, lines[0])) {
    const header = lines[0].map((cell) => String(cell ?? "").trim().toLowerCase());
    const missing = columns.filter((c) => !header.includes(c.name.toLowerCase()));
    if (missing.length) {
      throw new Error(`the header has no column ${missing.map((c) => c.name).join(", ")}`);
    }
    return lines.slice(1).map((line) => Object.fromEntries(columns.map((c) =>
      [c.name, textOf(line[header.indexOf(c.name.toLowerCase())], c)])));
  }
  const room = columns.length - firstColumn;
  const widest = Math.max(...lines.map((line) => trimTrailingBlanks(line).length));
  if (widest > room) {
    throw new Error(`the data has ${widest} columns but the table has ${room} from there `
                    + `(${columns.slice(firstColumn).map((c) => c.name).join(", ")})`);
  }
  return lines.map((line) => Object.fromEntries(
    line.slice(0, room).map((cell, i) => [columns[firstColumn + i].name,
                                          textOf(cell, columns[firstColumn + i])])));
}

function trimTrailingBlanks(line) {
  const copy = [...line];
  while (copy.length && String(copy[copy.length - 1] ?? "").trim() === "") copy.pop();
  return copy;
}

/**
 * A cell's text. Numbers from XLSX arrive as binary floats: a value that is its column's
 * decimal to within rounding noise (1234.5600000001) is written with the column's scale.
 */
function textOf(cell, column) {
  if (cell === undefined || cell === null) return "";
  if (typeof cell === "boolean") return cell ? "yes" : "no";
  if (typeof cell !== "number") {
    const text = String(cell).trim();
    // an allowed value in another case ("f" for "F") is shown as the schema spells it
    const canonical = column.values?.find((v) => String(v).toLowerCase() === text.toLowerCase());
    return canonical ?? text;
  }
  let kind;
  try { kind = columnKind(column); } catch { return String(cell); }
  if (kind.kind === "decimal" || kind.kind === "int") {
    const scale = kind.kind === "int" ? 0 : kind.scale;
    const fixed = cell.toFixed(scale);
    if (Math.abs(Number(fixed) - cell) <= 1e-9 * Math.max(1, Math.abs(cell))) {
      return scale === 0 ? fixed : fixed.replace(/0+$/, "").replace(/\.$/, "");
    }
  }
  return Number.isInteger(cell) ? BigInt(cell).toString() : String(cell);
}

/** Rows of {column name: text} from an uploaded .csv, .tsv, .txt, .xlsx or .xls file. */
export async function readTableFile(columns, file) {
  const name = file.name.toLowerCase();
  let workbook;
  try {
    if (/\.(csv|tsv|txt)$/.test(name)) {
      // raw: keep every CSV cell as the text the file holds (no guessing of dates or numbers)
      workbook = XLSX.read(await file.text(), { type: "string", raw: true });
    } else if (/\.(xlsx|xls|ods)$/.test(name)) {
      workbook = XLSX.read(new Uint8Array(await file.arrayBuffer()), { type: "array" });
    } else {
      throw new Error("choose a .csv, .xlsx, .xls or .ods file");
    }
  } catch (error) {
    throw new Error(`${file.name}: ${error.message}`);
  }
  const sheet = workbook.Sheets[workbook.SheetNames[0]];
  if (!sheet) throw new Error(`${file.name}: the file has no sheet`);
  const lines = XLSX.utils.sheet_to_json(sheet, { header: 1, raw: true, defval: "",
                                                  blankrows: false });
  let rows;
  try {
    rows = linesToRows(columns, lines);
  } catch (error) {
    throw new Error(`${file.name}: ${error.message}`);
  }
  if (rows.length === 0) throw new Error(`${file.name} has no rows`);
  return rows;
}
