// Runs a Python script on a real MicroPython (the WebAssembly port, npm
// @micropython/micropython-webassembly-pyscript) under Node.js.
//
//   node tools/micropython/run.mjs [--heap MiB] [--lib DIR]... SCRIPT [ARG]...
//
// Each --lib DIR is copied, recursively, into the in-memory file system under
// /lib/<basename of DIR>, which is on MicroPython's default sys.path. The
// script's arguments reach it as sys.argv[1:]. Exit status: 0 if the script
// ran to the end, 1 on a Python exception (the traceback goes to stderr), or
// the code of an explicit SystemExit.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
let heapMiB = 16;
const libs = [];
while (args.length && args[0].startsWith("--")) {
  const flag = args.shift();
  if (flag === "--heap") heapMiB = Number(args.shift());
  else if (flag === "--lib") libs.push(args.shift());
  else { console.error(`run.mjs: unknown option ${flag}`); process.exit(2); }
}
if (!args.length) { console.error("run.mjs: no script given"); process.exit(2); }
const [script, ...scriptArgs] = args;

const out = (stream) => (line) => stream.write(line + "\n");
const mp = await loadMicroPython({
  heapsize: heapMiB << 20,
  stdout: out(process.stdout),
  stderr: out(process.stderr),
});

function copyTree(src, dst) {
  mp.FS.mkdirTree(dst);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = dst + "/" + entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__") copyTree(s, d);
    } else if (entry.name.endsWith(".py")) {
      mp.FS.writeFile(d, fs.readFileSync(s));
    }
  }
}
for (const lib of libs) copyTree(lib, "/lib/" + path.basename(path.resolve(lib)));

const argv = JSON.stringify([script, ...scriptArgs]);
try {
  await mp.runPythonAsync(`import sys\nsys.argv[:] = ${argv}\n`);
  await mp.runPythonAsync(fs.readFileSync(script, "utf8"));
} catch (err) {
  if (err && err.name === "PythonError") {
    const m = /SystemExit:? ?(\d+)?/.exec(err.message);
    if (m) process.exit(m[1] ? Number(m[1]) : 0);
    process.stderr.write(err.message + "\n");
    process.exit(1);
  }
  throw err;
}
