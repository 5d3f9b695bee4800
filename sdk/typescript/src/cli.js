#!/usr/bin/env node
// `sdk/typescript/bin/verify FILE` (or `one-verify FILE` once installed): check a file of receipts (a JSON list, one
// receipt, {"receipts": [...]}, JSON lines, or replies carrying one), each receipt and the links between
// consecutive ones; a verdict per receipt; exit 0 when all pass, 1 otherwise (the contract of the network's `one verify`).

import { readFileSync } from "node:fs";

import { parseReceipts, pyStr, verifyChain } from "./receipts.js";

const USAGE = "usage: verify [-h] [--coordinator HEX] file\n";

export function main(argv) {
  let file = null, coordinator = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE + "\nVerify ONE receipts: hashes, signatures, chain links.\n\n  file               receipts: a JSON list, one " +
        "receipt, {'receipts': [...]} or JSON lines ('-' for stdin)\n  --coordinator HEX  pin the coordinator's public key (hex)\n");
      return 0;
    }
    if (arg === "--coordinator" && i + 1 < argv.length) coordinator = argv[++i];
    else if (arg.startsWith("--coordinator=")) coordinator = arg.slice("--coordinator=".length);
    else if (file === null && (arg === "-" || !arg.startsWith("-"))) file = arg;
    else {
      process.stderr.write(`${USAGE}verify: error: unrecognized arguments: ${arg}\n`);
      return 2;
    }
  }
  if (file === null) {
    process.stderr.write(`${USAGE}verify: error: the following arguments are required: file\n`);
    return 2;
  }
  let receipts;
  try {
    receipts = parseReceipts(readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (exc) {
    process.stderr.write(`cannot read receipts: ${exc.message}\n`);
    return 1;
  }
  const verdicts = verifyChain(receipts, coordinator);
  const lines = verdicts.map((v) => `seq ${pyStr(v.seq)} ${v.hash.slice(0, 16)} ${v.ok ? "valid" : "INVALID: " + v.problems.join("; ")}`);
  const ok = verdicts.length > 0 && verdicts.every((v) => v.ok);
  lines.push(`${verdicts.length} receipts: ${ok ? "all checks pass" : "verification FAILED"}`);
  process.stdout.write(lines.join("\n") + "\n");
  return ok ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
