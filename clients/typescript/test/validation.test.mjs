// Validation without AWS: addresses as the worker's parser (lettre) reads them, the
// messages' rules, and configuration errors.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SymphonyConfigError,
  SymphonyValidationError,
  createSymphonyClient,
  isEmailAddress,
  validateEmailMessage,
} from "../dist/index.js";

test("addresses lettre accepts", () => {
  for (const address of [
    "lead@example.com",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "user@localhost",
    '"quoted local"@example.com',
    '"with \\"escapes\\""@example.com',
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    "user@2001:db8::1",
    "josé@bücher.example",
    "user@☃.example",
  ]) {
    assert.equal(isEmailAddress(address), true, address);
  }
});

test("addresses lettre refuses", () => {
  for (const address of [
    "",
    "no-at-sign",
    "@example.com",
    "user@",
    "a..b@example.com",
    ".a@example.com",
    "a.@example.com",
    "a b@example.com",
    "user@-example.com",
    "user@example-.com",
    "user@exa mple.com",
    "user@example..com",
    `${"x".repeat(65)}@example.com`,
    `user@${"x".repeat(64)}.com`,
    '"unterminated@example.com',
    "a@b@",
    "Ada <ada@example.com>",
  ]) {
    assert.equal(isEmailAddress(address), false, address);
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
  // Everything named, no stack needed.
  const client = createSymphonyClient({
    region: "us-east-1",
    tables: { flags: "f", emails: "e" },
    queueUrls: { email: "https://q/e", campaign: "https://q/c", sms: "https://q/s" },
  });
  client.destroy();
});
