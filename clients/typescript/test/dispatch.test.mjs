// dispatchEmailMessage, dispatchCampaignProcessing and dispatchSmsDrip against moto, with
// the tables and queues template.yaml declares.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
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

  test("dispatching twice writes one row and sends once", async () => {
    const first = await client.dispatchEmailMessage(email("email-twice"));
    const rowAfterFirst = await getRow(stack.dynamodb, stack.tables.emails, "email-twice");
    const second = await client.dispatchEmailMessage(email("email-twice"));
    assert.equal(first.route, "symphony");
    assert.deepEqual(second, { emailId: "email-twice", route: "duplicate", messageId: null });
    assert.deepEqual(await getRow(stack.dynamodb, stack.tables.emails, "email-twice"), rowAfterFirst);
    const rows = (await stack.rows()).filter((row) => row.emailId.S === "email-twice");
    assert.equal(rows.length, 1);
    assert.equal((await stack.drain("email")).length, 1);
  });

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

  test("the claimed row: no tick takes it while the lease holds; one delivery sends it", async () => {
    await client.dispatchEmailMessage(email("email-lease"));
    const now = seconds();
    const { dynamodb, tables } = stack;
    assert.ok(!(await fetchDue(dynamodb, tables.emails, now + 60)).includes("email-lease"));
    assert.equal(await tickClaim(dynamodb, tables.emails, "email-lease", "legacy", now), false);
    // Abandoned only once claimed before the cutoff (now less CLAIM_LEASE_SECONDS).
    assert.ok(!(await fetchAbandoned(dynamodb, tables.emails, now - 3600)).includes("email-lease"));
    assert.ok((await fetchAbandoned(dynamodb, tables.emails, now + 1)).includes("email-lease"));
    // The worker finds it claimed and goes on: of two deliveries, one moves it to sending.
    assert.equal(await beginSend(dynamodb, tables.emails, "email-lease", now), true);
    assert.equal(await beginSend(dynamodb, tables.emails, "email-lease", now), false);
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
    assert.deepEqual(result, { emailId: "email-legacy", route: "legacy", messageId: null });
    const row = await getRow(stack.dynamodb, stack.tables.emails, "email-legacy");
    assert.equal(row.status.S, "queued");
    assert.ok(Math.abs(Number(row.dueAt.N) - seconds()) <= 2);
    for (const attribute of ["claimToken", "claimedAt", "claimedBy"]) assert.equal(row[attribute], undefined);
    assert.equal((await stack.drain("email")).length, 0);
  });

  test("the queued row is the tick's: due, claimed once", async () => {
    await client.dispatchEmailMessage(email("email-due"));
    const now = seconds();
    const { dynamodb, tables } = stack;
    assert.ok((await fetchDue(dynamodb, tables.emails, now)).includes("email-due"));
    assert.equal(await tickClaim(dynamodb, tables.emails, "email-due", "legacy", now), true);
    assert.equal(await tickClaim(dynamodb, tables.emails, "email-due", "symphony", now), false);
  });

  test("a second dispatch once flags are on does not send what the tick owns", async () => {
    await client.dispatchEmailMessage(email("email-flip"));
    await stack.setFlags(ALL_ON);
    try {
      const again = await client.dispatchEmailMessage(email("email-flip"));
      assert.equal(again.route, "duplicate");
      assert.equal((await getRow(stack.dynamodb, stack.tables.emails, "email-flip")).status.S, "queued");
      assert.equal((await stack.drain("email")).length, 0);
    } finally {
      await stack.setFlags({ SYMPHONY_ENABLED: null, SYMPHONY_EMAIL_QUEUE_ENABLED: null });
    }
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

  test("every problem is listed, the first named as the field", async () => {
    const input = email("e-many", { userId: "", toEmail: "nope", subject: "a\nb" });
    await assert.rejects(client.dispatchEmailMessage(input), (error) => {
      assert.deepEqual(
        error.problems.map((problem) => problem.field),
        ["userId", "toEmail", "subject"],
      );
      return true;
    });
    assert.equal((await stack.rows()).length, 0);
    assert.equal((await stack.drain("email")).length, 0);
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
