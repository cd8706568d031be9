// Copies the browser builds of the page's npm dependencies into vendor/ (served as
// /static/vendor/...), with their licences. Run by `npm run build` after `npm ci`; vendor/ is
// generated, never edited or committed. Only ES-module builds are copied, renamed to .js so
// that any static file server sends them as JavaScript.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "vendor");

// [package, file inside the package, name in vendor/]
const files = [
  ["tabulator-tables", "dist/js/tabulator_esm.min.js", "tabulator.js"],
  ["tabulator-tables", "dist/css/tabulator_simple.min.css", "tabulator.css"],
  ["libsodium", "dist/modules-esm/libsodium.mjs", "libsodium.js"],
  ["libsodium-wrappers", "dist/modules-esm/libsodium-wrappers.mjs", "libsodium-wrappers.js"],
  ["xlsx", "xlsx.mjs", "xlsx.js"],
];
const licences = {
  "tabulator-tables": "LICENSE",
  "libsodium": "LICENSE",
  "libsodium-wrappers": "LICENSE",
  "xlsx": "LICENSE",
};

rmSync(vendor, { recursive: true, force: true });
mkdirSync(join(vendor, "licenses"), { recursive: true });
for (const [pkg, file, name] of files) {
  const text = readFileSync(join(modules, pkg, file), "utf8");
  // the source maps are not copied: drop the comment that would make the browser ask for them
  writeFileSync(join(vendor, name), text.replace(/\n?\/[/*]# sourceMappingURL=[^\s*]+(?:\s*\*\/)?\s*$/, "\n"));
}
for (const [pkg, file] of Object.entries(licences)) {
  copyFileSync(join(modules, pkg, file), join(vendor, "licenses", `${pkg}.txt`));
}
const versionOf = (pkg) =>
  JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
const versions = Object.keys(licences).map((pkg) => `${pkg} ${versionOf(pkg)}`);
writeFileSync(join(vendor, "VERSIONS.txt"), versions.join("\n") + "\n");
console.log(`vendor/: ${files.length} files (${versions.join(", ")})`);
