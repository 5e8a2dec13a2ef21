// dispatchEmailMessage, dispatchCampaignProcessing and dispatchSmsDrip against moto, with
// the tables and queues template.yaml declares.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { CreateQueueCommand } from "@aws-sdk/client-sqs";

import {
  SymphonyConflictError,
  SymphonyDispatchError,
  SymphonyValidationError,
} from "../dist/index.js";
import { ALL_ON, deploy, email } from "./helpers/deployment.mjs";
import { beginSend, fetchAbandoned, fetchDue, getRow, tickClaim } from "./helpers/ledger.mjs";
import { CREDENTIALS, REGION, startMoto } from "./helpers/moto.mjs";
import { schemaErrors } from "./helpers/python.mjs";

const PACKAGE_ROOT = join(fileURLToPath(import.meta.url), "..", "..");
const seconds = () => Math.floor(Date.now() / 1000);

let moto;
before(async () => {
  moto = await startMoto(["--sqs-refuse-sends", "refusing-email:1"]);
});
after(async () => {
  await moto?.stop();
});

describe("one email, symphony route", () => {
  let stack;
  let client;
  before(async () => {
    stack = await deploy(moto, "single");
    await stack.setFlags(ALL_ON);
    client = stack.client();
  });
  after(() => {
    client.destroy();
    stack.close();
  });

  test("writes the row claimed as the tick's claim would, and puts the envelope on the queue", async () => {
    const before = seconds();
    const result = await client.dispatchEmailMessage(email("email-0001"));
    assert.equal(result.emailId, "email-0001");
    assert.equal(result.route, "symphony");
    assert.match(result.messageId, /\S/);

    const row = await getRow(stack.dynamodb, stack.tables.emails, "email-0001");
    assert.equal(row.status.S, "claimed");
    assert.equal(row.claimedBy.S, "symphony");
    assert.match(row.claimToken.S, /^[0-9a-f-]{36}$/);
    assert.ok(Number(row.claimedAt.N) >= before);
    assert.equal(row.dueAt.N, row.claimedAt.N);
    for (const [field, value] of Object.entries(email("email-0001"))) assert.deepEqual(row[field], { S: value });
    assert.equal(row.writeToken, undefined, "the web app never writes writeToken");

    const [message, ...others] = await stack.drain("email");
    assert.equal(others.length, 0);
    assert.equal(message.messageId, result.messageId);
    assert.deepEqual(Object.keys(message.envelope), ["id", "type", "payload", "meta"]);
    assert.equal(message.envelope.id, "email-0001");
    assert.equal(message.envelope.type, "EmailMessage");
    assert.deepEqual(message.envelope.payload, email("email-0001"));
    assert.equal(message.envelope.meta.correlationId, "email-0001");
    assert.equal(message.envelope.meta.source, "webapp");
    assert.equal(message.envelope.meta.attempt, 1);
    assert.equal(Date.parse(message.envelope.meta.dueAt) / 1000, Number(row.dueAt.N));
    assert.deepEqual(message.attributes, { type: "EmailMessage", correlationId: "email-0001" });
    assert.deepEqual(await schemaErrors([message.envelope]), [[]]);
  });

  test("the guide's six-field message: fromName and fromEmail left to the mailbox", async () => {
    const sixFields = email("email-six", { fromName: undefined, fromEmail: undefined });
    assert.equal((await client.dispatchEmailMessage(sixFields)).route, "symphony");
    const row = await getRow(stack.dynamodb, stack.tables.emails, "email-six");
    assert.equal(row.fromName, undefined);
    assert.equal(row.fromEmail, undefined);
    const [message] = await stack.drain("email");
    assert.deepEqual(message.envelope.payload, sixFields);
    assert.deepEqual(await schemaErrors([message.envelope]), [[]]);
  });

  test("dispatching again while the row is claimed sends the envelope again, over the same row", async () => {
    // As after a dispatch that died between the row and the send, or an app that retries.
    const first = await client.dispatchEmailMessage(email("email-twice"));
    assert.deepEqual({ ...first, messageId: undefined }, {
      emailId: "email-twice", route: "symphony", messageId: undefined, status: "claimed", redispatched: false,
    });
    const rowAfterFirst = await getRow(stack.dynamodb, stack.tables.emails, "email-twice");
    const second = await client.dispatchEmailMessage(email("email-twice"));
    assert.equal(second.route, "symphony");
    assert.equal(second.redispatched, true);
    assert.equal(second.status, "claimed");
    assert.notEqual(second.messageId, first.messageId);
    assert.deepEqual(await getRow(stack.dynamodb, stack.tables.emails, "email-twice"), rowAfterFirst, "the row is not written");
    const rows = (await stack.rows()).filter((row) => row.emailId.S === "email-twice");
    assert.equal(rows.length, 1);
    const messages = await stack.drain("email");
    assert.deepEqual(messages.map((message) => message.messageId).sort(), [first.messageId, second.messageId].sort());
    for (const message of messages) {
      assert.equal(message.envelope.id, "email-twice");
      // Latency is counted from the row's due time, not from the second dispatch.
      assert.equal(Date.parse(message.envelope.meta.dueAt) / 1000, Number(rowAfterFirst.dueAt.N));
    }
  });

  for (const status of ["sending", "sent", "failed", "unknown", "queued"]) {
    test(`a duplicate of a ${status} row answers duplicate with that status, and sends nothing`, async () => {
      const id = `email-dup-${status}`;
      await client.dispatchEmailMessage(email(id));
      await stack.drain("email");
      await stack.setRowStatus(id, status);
      const before = await getRow(stack.dynamodb, stack.tables.emails, id);
      const again = await client.dispatchEmailMessage(email(id));
      assert.deepEqual(again, { emailId: id, route: "duplicate", messageId: null, status, redispatched: false });
      assert.deepEqual(await getRow(stack.dynamodb, stack.tables.emails, id), before);
      assert.equal((await stack.drain("email")).length, 0);
    });
  }

  test("another email under an existing id is refused, naming what differs", async () => {
    await client.dispatchEmailMessage(email("email-taken"));
    const before = await getRow(stack.dynamodb, stack.tables.emails, "email-taken");
    await assert.rejects(client.dispatchEmailMessage(email("email-taken", { subject: "Other" })), (error) => {
      assert.ok(error instanceof SymphonyConflictError);
      assert.deepEqual(error.differingFields, ["subject"]);
      assert.doesNotMatch(error.message, /Other/, "values are not quoted");
      return true;
    });
    assert.deepEqual(await getRow(stack.dynamodb, stack.tables.emails, "email-taken"), before);
    assert.equal((await stack.drain("email")).length, 1);
  });

  test("the claimed row (through mirrored queries): not due, abandoned once the lease is over, taken by begin_send", async () => {
    await client.dispatchEmailMessage(email("email-lease"));
    const now = seconds();
    const { dynamodb, tables } = stack;
    assert.ok(!(await fetchDue(dynamodb, tables.emails, now + 60)).includes("email-lease"));
    // Abandoned only once claimed before the cutoff (now less CLAIM_LEASE_SECONDS).
    assert.ok(!(await fetchAbandoned(dynamodb, tables.emails, now - 3600)).includes("email-lease"));
    assert.ok((await fetchAbandoned(dynamodb, tables.emails, now + 1)).includes("email-lease"));
    // The worker finds it claimed and goes on.
    assert.equal(await beginSend(dynamodb, tables.emails, "email-lease", now), true);
    await stack.drain("email");
  });
});

describe("one email, legacy route", () => {
  let stack;
  let client;
  before(async () => {
    stack = await deploy(moto, "legacy");
    client = stack.client();
  });
  after(() => {
    client.destroy();
    stack.close();
  });

  test("with no flag items the email is written queued, due now, and nothing is sent", async () => {
    const result = await client.dispatchEmailMessage(email("email-legacy"));
    assert.deepEqual(result, { emailId: "email-legacy", route: "legacy", messageId: null, status: "queued", redispatched: false });
    const row = await getRow(stack.dynamodb, stack.tables.emails, "email-legacy");
    assert.equal(row.status.S, "queued");
    assert.ok(Math.abs(Number(row.dueAt.N) - seconds()) <= 2);
    for (const attribute of ["claimToken", "claimedAt", "claimedBy"]) assert.equal(row[attribute], undefined);
    assert.equal((await stack.drain("email")).length, 0);
  });

  test("the queued row (through mirrored queries): due, and the tick's claim takes it", async () => {
    await client.dispatchEmailMessage(email("email-due"));
    const now = seconds();
    const { dynamodb, tables } = stack;
    assert.ok((await fetchDue(dynamodb, tables.emails, now)).includes("email-due"));
    assert.equal(await tickClaim(dynamodb, tables.emails, "email-due", "legacy", now), true);
  });

  test("a second dispatch once flags are on does not send what the tick owns", async () => {
    await client.dispatchEmailMessage(email("email-flip"));
    await stack.setFlags(ALL_ON);
    try {
      const again = await client.dispatchEmailMessage(email("email-flip"));
      assert.deepEqual(again, { emailId: "email-flip", route: "duplicate", messageId: null, status: "queued", redispatched: false });
      assert.equal((await getRow(stack.dynamodb, stack.tables.emails, "email-flip")).status.S, "queued");
      assert.equal((await stack.drain("email")).length, 0);
    } finally {
      await stack.setFlags({ SYMPHONY_ENABLED: null, SYMPHONY_EMAIL_QUEUE_ENABLED: null });
    }
  });

  test("a claimed row is not sent again while the flags send its email the legacy way", async () => {
    // Claimed under symphony flags; dispatched again once they are off (the kill switch):
    // the tick takes it over when its lease runs out, by the flags of that moment.
    await stack.setFlags(ALL_ON);
    try {
      await client.dispatchEmailMessage(email("email-switched"));
      await stack.drain("email");
    } finally {
      await stack.setFlags({ SYMPHONY_ENABLED: null, SYMPHONY_EMAIL_QUEUE_ENABLED: null });
    }
    const again = await client.dispatchEmailMessage(email("email-switched"));
    assert.deepEqual(again, { emailId: "email-switched", route: "duplicate", messageId: null, status: "claimed", redispatched: false });
    assert.equal((await stack.drain("email")).length, 0);
  });
});

describe("bad input is refused before anything is written", () => {
  let stack;
  let client;
  before(async () => {
    stack = await deploy(moto, "refused");
    await stack.setFlags(ALL_ON);
    client = stack.client();
  });
  after(() => {
    client.destroy();
    stack.close();
  });

  const cases = [
    ["a missing emailId", email("x", { emailId: undefined }), "emailId", /emailId is missing/],
    ["an empty userId", email("e-1", { userId: "  " }), "userId", /userId is empty/],
    ["a missing mailboxId", email("e-2", { mailboxId: undefined }), "mailboxId", /mailboxId is missing/],
    ["a missing html", email("e-3", { html: undefined }), "html", /html is missing/],
    ["an invalid toEmail", email("e-4", { toEmail: "not-an-address" }), "toEmail", /not a valid email address/],
    ["an invalid fromEmail", email("e-5", { fromEmail: "@" }), "fromEmail", /not a valid email address/],
    ["a subject over 998 characters", email("e-6", { subject: "é".repeat(999) }), "subject", /999 characters, over 998/],
    ["a subject with a line break", email("e-7", { subject: "Hi\r\nBcc: x@example.com" }), "subject", /line break/],
    ["a fromName with a line break", email("e-8", { fromName: "Ada\nBcc" }), "fromName", /line break/],
    ["html over 900 KiB", email("e-9", { html: "x".repeat(900 * 1024 + 1) }), "html", /921601 bytes, over 921600/],
    ["an unknown field", { ...email("e-10"), replyTo: "a@example.com" }, "replyTo", /not a field of EmailMessage/],
    ["a number for a string", email("e-11", { subject: 7 }), "subject", /must be a string/],
    [
      "an envelope over the queue's 256 KiB",
      email("e-12", { html: "x".repeat(300 * 1024) }),
      "html",
      /over the queue's limit of 262144 bytes/,
    ],
    ["a lone surrogate in the subject", email("e-13", { subject: "Hi \uD83D there" }), "subject", /not well-formed UTF-16 \(a lone surrogate, U\+D83D, at index 3\)/],
    ["a lone low surrogate at the end of the html", email("e-14", { html: "<p>\uDE00" }), "html", /lone surrogate, U\+DE00/],
    ["a NUL in the html", email("e-15", { html: "<p>\u0000</p>" }), "html", /contains U\+0000 at index 3, a character SQS refuses/],
    ["a vertical tab in the fromName", email("e-16", { fromName: "Ada\u000bLovelace" }), "fromName", /U\+000B/],
    ["U+FFFF in the mailboxId", email("e-17", { mailboxId: "mailbox\uFFFF" }), "mailboxId", /U\+FFFF/],
    ["an escape character in the emailId", email("e\u001b18"), "emailId", /U\+001B/],
    ["an emailId of Unicode white space only (NEL, ideographic space)", email("\u0085\u3000\u2028"), "emailId", /emailId is empty/],
    ["an emailId over DynamoDB's 2048-byte key", email("é".repeat(1025)), "emailId", /2050 bytes, over the 2048 of a DynamoDB key/],
  ];

  for (const [name, input, field, reason] of cases) {
    test(name, async () => {
      await moto.resetRequests();
      await assert.rejects(client.dispatchEmailMessage(input), (error) => {
        assert.ok(error instanceof SymphonyValidationError, error.stack);
        assert.equal(error.field, field);
        assert.match(error.message, reason);
        return true;
      });
      const requests = await moto.requests();
      for (const write of ["DynamoDB.PutItem", "DynamoDB.UpdateItem", "SQS.SendMessageBatch", "SQS.SendMessage"]) {
        assert.equal(requests[write], undefined, `${write} after refusing ${name}`);
      }
    });
  }

  test("an id of U+FEFF alone is not empty for Rust's trim (JavaScript's trim would say it is), so it is taken", async () => {
    const result = await client.dispatchEmailMessage(email("\uFEFF"));
    assert.equal(result.route, "symphony");
    const [message] = await stack.drain("email");
    assert.equal(message.envelope.id, "\uFEFF");
    assert.equal(message.attributes.correlationId, "\uFEFF");
  });

  test("characters SQS takes (tab, line feed, carriage return, the top of the BMP, astral planes) are taken", async () => {
    const html = "<p>\t\n\r\uD7FF\uE000\uFFFD\u{10000}\u{10FFFF}😀</p>";
    assert.equal((await client.dispatchEmailMessage(email("e-wide", { html }))).route, "symphony");
    const [message] = await stack.drain("email");
    assert.equal(message.envelope.payload.html, html);
  });

  test("every problem is listed, the first named as the field", async () => {
    const input = email("e-many", { userId: "", toEmail: "nope", subject: "a\nb" });
    await assert.rejects(client.dispatchEmailMessage(input), (error) => {
      assert.deepEqual(
        error.problems.map((problem) => problem.field),
        ["userId", "toEmail", "subject"],
      );
      return true;
    });
    assert.equal((await stack.rows()).filter((row) => row.emailId.S === "e-many").length, 0);
    assert.equal((await stack.drain("email")).length, 0);
  });
});

/**
 * MIRROR of the envelope the scheduled function's tick puts on the queue for a row it
 * sends itself, written out by hand from `Envelope::wrap` (shared/core/src/envelope.rs),
 * the tick's `meta.dueAt` (shared/core/src/tick.rs) and `OutgoingEntry::size`
 * (shared/aws/src/sqs.rs): a UUID id, source `process-email-queue`, `createdAt` with nine
 * fraction digits, `dueAt` without a fraction. Answers the size SQS counts.
 */
function tickEnvelopeBytes(message) {
  const body = JSON.stringify({
    id: randomUUID(),
    type: "EmailMessage",
    payload: message,
    meta: {
      correlationId: message.emailId,
      createdAt: "2031-07-04T09:15:42.123456789Z",
      source: "process-email-queue",
      attempt: 1,
      dueAt: "2031-07-04T09:15:42Z",
    },
  });
  const attributes = [["type", "EmailMessage"], ["correlationId", message.emailId]];
  return Buffer.byteLength(body) + attributes.reduce((sum, [name, value]) => sum + name.length + "String".length + Buffer.byteLength(value), 0);
}

describe("sizes: the tick's envelope of the same row must fit the queue too", () => {
  const LIMIT = 4096;
  let stack;
  let client;
  before(async () => {
    stack = await deploy(moto, "sizes");
    await stack.setFlags(ALL_ON);
    client = stack.client({ maxMessageBytes: LIMIT });
  });
  after(() => {
    client.destroy();
    stack.close();
  });

  // Quotes, a line feed and non-ASCII: what JSON escapes or counts in several bytes.
  const sized = (emailId, extra) => email(emailId, { html: `<p class="a">é\n☃${"x".repeat(extra)}` });
  const fitting = (emailId) => LIMIT - tickEnvelopeBytes(sized(emailId, 0));

  test("at exactly the queue's limit the email is taken (its own envelope is well under it)", async () => {
    const message = sized("b-1", fitting("b-1"));
    assert.equal(tickEnvelopeBytes(message), LIMIT);
    const result = await client.dispatchEmailMessage(message);
    assert.equal(result.route, "symphony");
    const [sent] = await stack.drain("email");
    const ownBytes = Buffer.byteLength(sent.body) + "type".length + 6 + "EmailMessage".length + "correlationId".length + 6 + 3;
    // A short id, `webapp`, three fraction digits: 48 bytes less than the tick's.
    assert.equal(ownBytes, LIMIT - 48);
  });

  for (const flags of [ALL_ON, { SYMPHONY_ENABLED: false }]) {
    const route = flags === ALL_ON ? "symphony" : "legacy";
    test(`one byte more is refused before any write (${route} route), though the client's own envelope would fit`, async () => {
      await stack.setFlags(flags);
      try {
        const message = sized("b-2", fitting("b-2") + 1);
        assert.equal(tickEnvelopeBytes(message), LIMIT + 1);
        await moto.resetRequests();
        await assert.rejects(client.dispatchEmailMessage(message), (error) => {
          assert.ok(error instanceof SymphonyValidationError, error.stack);
          assert.equal(error.field, "html");
          assert.equal(error.emailLeft, "none");
          assert.match(error.message, /makes the message 4097 bytes as the scheduled function would send it, over the queue's limit of 4096 bytes/);
          return true;
        });
        const requests = await moto.requests();
        assert.equal(requests["DynamoDB.PutItem"], undefined);
        assert.equal(requests["SQS.SendMessageBatch"], undefined);
      } finally {
        await stack.setFlags(ALL_ON);
      }
    });
  }

  test("the batch refuses it the same way, and dispatches the rest", async () => {
    const result = await client.dispatchEmailQueueBatch([sized("b-3", fitting("b-3") + 1), sized("b-4", fitting("b-4"))]);
    assert.deepEqual(result.failed.map(({ index, emailLeft }) => ({ index, emailLeft })), [{ index: 0, emailLeft: "none" }]);
    assert.match(result.failed[0].reason, /as the scheduled function would send it/);
    assert.deepEqual(result.dispatched.map((sent) => sent.emailId), ["b-4"]);
    assert.equal((await stack.drain("email")).length, 1);
  });
});

test("a queue that refuses the send: the claim is given back, the email stays queued for the tick", async () => {
  const stack = await deploy(moto, "refusing");
  await stack.setFlags(ALL_ON);
  const client = stack.client();
  try {
    await assert.rejects(client.dispatchEmailMessage(email("email-refused")), (error) => {
      assert.ok(error instanceof SymphonyDispatchError, error.stack);
      assert.equal(error.emailLeft, "queued");
      assert.equal(error.emailId, "email-refused");
      assert.equal(error.code, "AccessDenied");
      assert.match(error.message, /left queued/);
      assert.ok(error.cause, "the SDK's error is kept");
      return true;
    });
    const row = await getRow(stack.dynamodb, stack.tables.emails, "email-refused");
    assert.equal(row.status.S, "queued");
    for (const attribute of ["claimToken", "claimedAt", "claimedBy"]) assert.equal(row[attribute], undefined);
    assert.ok((await fetchDue(stack.dynamodb, stack.tables.emails, seconds())).includes("email-refused"));
  } finally {
    client.destroy();
    stack.close();
  }
});

test("a FIFO email queue: each email in its own group, deduplicated by its id", async () => {
  const stack = await deploy(moto, "fifo");
  await stack.setFlags(ALL_ON);
  const created = await stack.sqs.send(
    new CreateQueueCommand({
      QueueName: "fifo-email.fifo",
      Attributes: { FifoQueue: "true", MaximumMessageSize: "262144" },
    }),
  );
  const client = stack.client({ queueUrls: { email: created.QueueUrl } });
  try {
    assert.equal((await client.dispatchEmailMessage(email("email-fifo"))).route, "symphony");
    stack.urls.email = created.QueueUrl;
    const [message] = await stack.drain("email");
    assert.equal(message.systemAttributes.MessageGroupId, "email-fifo");
    assert.equal(message.systemAttributes.MessageDeduplicationId, "email-fifo");

    // Ids SQS would refuse as group or deduplication ids: over 128 characters, a space,
    // non-ASCII. Each goes as the SHA-256 of its UTF-8, in hex.
    const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");
    for (const id of ["f".repeat(129), "email with spaces", "émail-ünïcode"]) {
      assert.equal((await client.dispatchEmailMessage(email(id))).route, "symphony", id);
      const [unusual] = await stack.drain("email");
      assert.equal(unusual.envelope.id, id);
      assert.equal(unusual.systemAttributes.MessageGroupId, sha256(id));
      assert.equal(unusual.systemAttributes.MessageDeduplicationId, sha256(id));
    }
    // 128 printable ASCII characters are taken as they are.
    const longest = `${"!~".repeat(63)}ok`;
    await client.dispatchEmailMessage(email(longest));
    const [kept] = await stack.drain("email");
    assert.equal(kept.systemAttributes.MessageDeduplicationId, longest);
  } finally {
    client.destroy();
    stack.close();
  }
});

describe("campaign runs and SMS drip steps", () => {
  let stack;
  let client;
  before(async () => {
    stack = await deploy(moto, "units");
    client = stack.client();
  });
  after(() => {
    client.destroy();
    stack.close();
  });

  test("a campaign run goes on the campaign queue when its flags say so", async () => {
    await stack.setFlags({ SYMPHONY_ENABLED: true, SYMPHONY_CAMPAIGN_PROCESSING_ENABLED: true });
    const result = await client.dispatchCampaignProcessing("campaign-1", "user-1", { action: "process" });
    assert.equal(result.route, "symphony");
    const [message] = await stack.drain("campaign");
    assert.equal(message.messageId, result.messageId);
    assert.equal(message.envelope.id, "campaign-1");
    assert.deepEqual(message.envelope.payload, { campaignId: "campaign-1", userId: "user-1", action: "process" });
    assert.deepEqual(message.attributes, { type: "CampaignProcessingMessage", correlationId: "campaign-1" });
    assert.deepEqual(await schemaErrors([message.envelope]), [[]]);
  });

  test("on the legacy route nothing is sent: the tick runs active campaigns", async () => {
    await stack.setFlags({ SYMPHONY_CAMPAIGN_PROCESSING_ENABLED: false });
    const result = await client.dispatchCampaignProcessing("campaign-2", "user-1");
    assert.deepEqual(result, { unitId: "campaign-2", route: "legacy", messageId: null });
    assert.equal((await stack.drain("campaign")).length, 0);
  });

  test("a campaign message is checked as the worker would", async () => {
    await assert.rejects(client.dispatchCampaignProcessing(" ", "user-1"), { field: "campaignId" });
    await assert.rejects(client.dispatchCampaignProcessing("c", "u", { action: "pause" }), { field: "action" });
  });

  test("an SMS drip step goes on the SMS queue, one envelope id per step", async () => {
    await stack.setFlags({ SYMPHONY_ENABLED: true, SYMPHONY_SMS_DRIP_ENABLED: true });
    const step = { enrollmentId: "enrollment-1", sequenceId: "sequence-1", userId: "user-1", toPhone: "+15550100", step: 2 };
    const result = await client.dispatchSmsDrip(step);
    assert.equal(result.route, "symphony");
    const [message] = await stack.drain("sms");
    assert.equal(message.envelope.id, "enrollment-1#2");
    assert.equal(message.envelope.meta.correlationId, "enrollment-1");
    assert.deepEqual(message.envelope.payload, step);
    assert.deepEqual(await schemaErrors([message.envelope]), [[]]);
  });

  test("an SMS step is checked as the worker would", async () => {
    const step = { enrollmentId: "e", sequenceId: "s", userId: "u", toPhone: "555-0100", step: 0 };
    await assert.rejects(client.dispatchSmsDrip(step), { field: "toPhone" });
    await assert.rejects(client.dispatchSmsDrip({ ...step, toPhone: "+15550100", step: -1 }), { field: "step" });
    await assert.rejects(client.dispatchSmsDrip({ ...step, toPhone: "+15550100", step: 1.5 }), { field: "step" });
  });

  test("an SMS step the rollout keeps legacy is not sent", async () => {
    await stack.setFlags({ SYMPHONY_SMS_DRIP_ENABLED: [true, 0] });
    const result = await client.dispatchSmsDrip({
      enrollmentId: "enrollment-2", sequenceId: "s", userId: "u", toPhone: "+15550100", step: 0,
    });
    assert.equal(result.route, "legacy");
    assert.equal((await stack.drain("sms")).length, 0);
  });
});

test("examples/dispatch-email.mjs dispatches one email through the built package", async () => {
  const stack = await deploy(moto, "example");
  await stack.setFlags(ALL_ON);
  try {
    const config = { endpoint: moto.endpoint, region: REGION, stack: "example", email: email("email-example") };
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(PACKAGE_ROOT, "examples", "dispatch-email.mjs"), JSON.stringify(config)],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
        },
      },
    );
    const printed = JSON.parse(stdout);
    assert.equal(printed.emailId, "email-example");
    assert.equal(printed.route, "symphony");
    const [message] = await stack.drain("email");
    assert.equal(message.messageId, printed.messageId);
  } finally {
    stack.close();
  }
});
