// Validation without AWS: addresses as the worker's parser (lettre) reads them, the
// messages' rules, and configuration errors.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  SymphonyConfigError,
  SymphonyValidationError,
  characterProblem,
  createSymphonyClient,
  fifoId,
  isEmailAddress,
  validateCampaignProcessingMessage,
  validateEmailMessage,
  validateSmsDripMessage,
} from "../dist/index.js";

// The vectors are shared with the Rust side, which checks the same file against
// lettre::Address: only addresses lettre is known to judge the same way belong there.
const ADDRESSES = JSON.parse(readFileSync(new URL("./fixtures/addresses.json", import.meta.url), "utf8"));

test("addresses lettre accepts (test/fixtures/addresses.json)", () => {
  assert.ok(ADDRESSES.accepted.length > 10);
  for (const address of ADDRESSES.accepted) assert.equal(isEmailAddress(address), true, address);
});

test("addresses lettre refuses (test/fixtures/addresses.json)", () => {
  assert.ok(ADDRESSES.refused.length > 10);
  for (const address of ADDRESSES.refused) assert.equal(isEmailAddress(address), false, address);
});

const message = (overrides) => ({
  emailId: "e", userId: "u", mailboxId: "m", toEmail: "a@example.com", subject: "s", html: "<p/>", ...overrides,
});
const problemsOf = (input) => {
  try {
    validateEmailMessage(input);
    return [];
  } catch (error) {
    assert.ok(error instanceof SymphonyValidationError);
    return error.problems;
  }
};

test("an id is empty as Rust's trim sees it: Unicode White_Space only", () => {
  // White_Space: what char::is_whitespace, and so str::trim, removes.
  for (const blank of ["", " ", "\t\n\r", "\u0085", "\u00a0", "\u1680", "\u2000\u200a", "\u2028\u2029", "\u202f\u205f\u3000"]) {
    const reasons = problemsOf(message({ userId: blank })).filter((problem) => problem.field === "userId");
    assert.ok(reasons.some((problem) => problem.reason === "is empty"), JSON.stringify(blank));
  }
  // (U+000B and U+000C are White_Space too, but refused first: SQS refuses them.)
  // Not White_Space (JavaScript's trim removes U+FEFF; Rust's does not), or not blank.
  for (const kept of ["\ufeff", "\u200b", "\u180e", " x "]) {
    assert.deepEqual(problemsOf(message({ userId: kept })), [], JSON.stringify(kept));
  }
});

test("strings that are not well-formed UTF-16, or hold what SQS refuses, are refused in any field", () => {
  for (const field of ["emailId", "userId", "mailboxId", "subject", "html", "fromName"]) {
    for (const [bad, reason] of [
      ["a\uD800", /lone surrogate, U\+D800, at index 1/],
      ["\uDFFFa", /lone surrogate, U\+DFFF, at index 0/],
      ["a\u0000", /contains U\+0000 at index 1, a character SQS refuses/],
      ["a\u001f", /U\+001F/],
      ["a\ufffe", /U\+FFFE/],
      ["a\uffff", /U\+FFFF/],
    ]) {
      const problems = problemsOf(message({ [field]: bad }));
      assert.equal(problems.length, 1, `${field} ${JSON.stringify(bad)}`);
      assert.equal(problems[0].field, field);
      assert.match(problems[0].reason, reason);
    }
  }
  assert.equal(problemsOf(message({ toEmail: "a\u0000@example.com" }))[0].field, "toEmail");
  assert.equal(characterProblem("\t\n\r \ud7ff\ue000\ufffd\u{10000}\u{10ffff}"), undefined);
  assert.throws(() => validateSmsDripMessage({ enrollmentId: "e\u0001", sequenceId: "s", userId: "u", toPhone: "+15550100", step: 0 }), {
    field: "enrollmentId",
  });
  assert.throws(() => validateCampaignProcessingMessage({ campaignId: "c", userId: "\uD83D", action: "process" }), { field: "userId" });
});

test("FIFO ids: printable ASCII up to 128 characters as they are; anything else as its SHA-256", () => {
  const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");
  for (const kept of ["email-1", "a".repeat(128), "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]) assert.equal(fifoId(kept), kept);
  for (const hashed of ["", "a".repeat(129), "with space", "émail", "tab\there", "😀"]) {
    assert.equal(fifoId(hashed), sha256(hashed), hashed);
    assert.match(fifoId(hashed), /^[0-9a-f]{64}$/);
  }
});

test("a valid message comes back with its fields in the schema's order, absent optionals left out", () => {
  const message = validateEmailMessage({
    html: "<p/>",
    subject: "",
    toEmail: "a@example.com",
    mailboxId: "m",
    userId: "u",
    emailId: "e",
    fromName: null,
  });
  assert.deepEqual(Object.keys(message), ["emailId", "userId", "mailboxId", "toEmail", "subject", "html"]);
});

test("something that is not an object is refused", () => {
  for (const input of [null, "email", 7, []]) {
    assert.throws(() => validateEmailMessage(input), (error) => {
      assert.ok(error instanceof SymphonyValidationError);
      assert.equal(error.field, "(message)");
      return true;
    });
  }
});

test("configuration errors say what to set", () => {
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
  delete process.env.AWS_REGION;
  delete process.env.AWS_DEFAULT_REGION;
  try {
    assert.throws(() => createSymphonyClient({ stack: "prod" }), {
      name: "SymphonyConfigError",
      message: /region is not set/,
    });
  } finally {
    for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
  }
  assert.throws(() => createSymphonyClient({ region: "us-east-1" }), /stack is not set, nor tables.flags, tables.emails, queueUrls.email/);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "no spaces" }), SymphonyConfigError);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "p", maxMessageBytes: 10 }), /maxMessageBytes/);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "p", flagCacheTtlMs: -1 }), /flagCacheTtlMs/);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "p", requestTimeoutMs: 0 }), /requestTimeoutMs/);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "p", source: "app\uffff" }), /source contains U\+FFFF/);
  assert.throws(() => createSymphonyClient({ region: "us-east-1", stack: "p", connectionTimeoutMs: 1.5 }), /connectionTimeoutMs/);
  // Everything named, no stack needed.
  const client = createSymphonyClient({
    region: "us-east-1",
    tables: { flags: "f", emails: "e" },
    queueUrls: { email: "https://q/e", campaign: "https://q/c", sms: "https://q/s" },
  });
  client.destroy();
});
