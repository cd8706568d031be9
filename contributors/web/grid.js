// The spreadsheet-like grid (Tabulator): one column per column of the session's table, cells
// kept as the text the contributor typed, pasted or uploaded, each cell marked with the
// schema's verdict as it is drawn. Pasting tab-separated text (from Excel) fills the grid from
// the selected cell on and adds rows as needed.
import { TabulatorFull as Tabulator } from "./vendor/tabulator.js";
import { columnKind, isBlank, readCell } from "./schema.js";
import { linesToRows, splitPastedText } from "./tabular_text.js";

const BLANK_ROWS_AT_START = 10;

function blankRow(columns) {
  return Object.fromEntries(columns.map((c) => [c.name, ""]));
}

/** What is wrong with a cell in its row, or "" when nothing is. */
function cellProblem(column, rowData, columns) {
  const text = rowData[column.name];
  if (isBlank(text)) {
    return columns.some((c) => !isBlank(rowData[c.name])) ? "missing value" : "";
  }
  return readCell(column, text).error ?? "";
}

function hintOf(column) {
  const kind = columnKind(column);
  if (kind.kind === "category") return `one of: ${column.values.join(", ")}`;
  const range = [column.min !== undefined ? `from ${column.min}` : "",
                 column.max !== undefined ? `to ${column.max}` : ""].filter(Boolean).join(" ");
  const what = { int: "a whole number", decimal: `a number (up to ${kind.scale} decimals)`,
                 float: "a number", bool: "yes or no" }[kind.kind];
  return range ? `${what} ${range}` : what;
}

function columnDefinition(column, columns) {
  const kind = columnKind(column);
  return {
    title: column.name,
    field: column.name,
    headerSort: false,
    headerTooltip: hintOf(column),
    hozAlign: kind.kind === "category" ? "left" : "right",
    minWidth: 120,
    editor: kind.kind === "category" ? "list" : "input",
    editorParams: kind.kind === "category"
      ? { values: column.values, autocomplete: true, allowEmpty: true, listOnEmpty: true,
          freetext: true }
      : {},
    // the verdict is drawn on the cell itself: a class for the colour, a tooltip for the reason
    formatter: (cell) => {
      const problem = cellProblem(column, cell.getRow().getData(), columns);
      const element = cell.getElement();
      element.classList.toggle("cell-invalid", problem !== "");
      element.title = problem;
      return document.createTextNode(cell.getValue() ?? "");
    },
  };
}

/** The first selected row and data column, where a paste starts; the top-left cell if none. */
function pasteAnchor(table, columns) {
  const range = table.getRanges?.()[0];
  const rows = table.getRows("active");
  if (!range) return { rowIndex: 0, columnIndex: 0 };
  const names = columns.map((c) => c.name);
  const selectedColumns = range.getColumns().map((c) => names.indexOf(c.getField()))
    .filter((i) => i >= 0);
  const selectedRows = range.getRows();
  return { rowIndex: selectedRows.length ? rows.indexOf(selectedRows[0]) : 0,
           columnIndex: selectedColumns.length ? Math.min(...selectedColumns) : 0 };
}

/**
 * Builds the grid in element for the session's columns. onChange() runs after every edit,
 * paste or load; onPasteError(message) when pasted text does not fit the table (null when
 * a paste fits).
 * Returns {getRows(), setRows(rows), addBlankRows(n), clear()}.
 */
export function createGrid(element, columns, { onChange, onPasteError }) {
  let anchor = { rowIndex: 0, columnIndex: 0 };
  const table = new Tabulator(element, {
    data: Array.from({ length: BLANK_ROWS_AT_START }, () => blankRow(columns)),
    layout: "fitColumns",
    height: "360px",
    reactiveData: false,
    rowHeader: { formatter: "rownum", headerSort: false, hozAlign: "center", resizable: false,
                 frozen: true, width: 48 },
    columns: columns.map((c) => columnDefinition(c, columns)),
    selectableRange: 1,
    selectableRangeColumns: true,
    selectableRangeRows: true,
    selectableRangeClearCells: true,
    editTriggerEvent: "dblclick",
    clipboard: true,
    clipboardCopyStyled: false,
    clipboardCopyConfig: { rowHeaders: false, columnHeaders: false },
    clipboardCopyRowRange: "range",
    // the parser reads the text (and remembers where it goes); the action writes it there
    clipboardPasteParser: (text) => {
      anchor = pasteAnchor(table, columns);
      try {
        const rows = linesToRows(columns, splitPastedText(text), anchor.columnIndex);
        onPasteError(null);  // a good paste clears the complaint about an earlier one
        return rows;
      } catch (error) {
        onPasteError(`The pasted text does not fit the table: ${error.message}.`);
        return false;
      }
    },
    clipboardPasteAction: (pasted) =>
      writeRowsAt(table, columns, pasted, anchor.rowIndex, onChange),
  });
  table.on("cellEdited", (cell) => { cell.getRow().reformat(); onChange(); });
  element.addEventListener("keydown", (event) => typeToEdit(table, event));
  table.on("tableBuilt", () => onChange());
  return {
    getRows: () => table.getData().map((row) => ({ ...row })),
    setRows: async (rows) => {
      await table.setData(rows.length ? rows : [blankRow(columns)]);
      onChange();
    },
    addBlankRows: async (count) => {
      await table.addData(Array.from({ length: count }, () => blankRow(columns)));
      onChange();
    },
    clear: async () => {
      await table.setData(Array.from({ length: BLANK_ROWS_AT_START }, () => blankRow(columns)));
      onChange();
    },
  };
}

/**
 * As in a spreadsheet, typing on a selected cell starts editing it with what was typed, and
 * Enter or F2 edits it as it is (Tabulator itself edits on double-click only).
 */
function typeToEdit(table, event) {
  const typed = event.key.length === 1;
  if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey
      || !(typed || event.key === "Enter" || event.key === "F2")) return;
  const cell = table.getRanges()[0]?.getCells().flat().find((c) => c.getField());
  if (!cell) return;
  event.preventDefault();
  cell.edit(true);
  const input = cell.getElement().querySelector("input");
  if (typed && input) {
    input.value = event.key;
    input.dispatchEvent(new Event("input", { bubbles: true }));  // the list editor filters
  }
}

/** Writes pasted rows over the grid from rowIndex on, adding rows past its end; then onChange. */
function writeRowsAt(table, columns, pasted, rowIndex, onChange) {
  const rows = table.getRows("active");
  const touched = [];
  table.blockRedraw();
  pasted.forEach((values, i) => {
    const row = rows[rowIndex + i];
    if (row) { row.update(values); touched.push(row); }
  });
  table.restoreRedraw();
  const extra = pasted.slice(Math.max(0, rows.length - rowIndex))
    .map((values) => ({ ...blankRow(columns), ...values }));
  touched.forEach((row) => row.reformat());
  (extra.length ? table.addData(extra) : Promise.resolve()).then(() => onChange());
  return touched;
}
