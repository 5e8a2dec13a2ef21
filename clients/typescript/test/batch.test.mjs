// dispatchEmailQueueBatch against moto: ten a request, size-aware, routed by the rollout
// bucket, and every email that was not dispatched reported with where it waits.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";

import { bucket, planRequests } from "../dist/index.js";
import { ALL_ON, deploy, email } from "./helpers/deployment.mjs";
import { getRow } from "./helpers/ledger.mjs";
import { startMoto } from "./helpers/moto.mjs";
import { schemaErrors } from "./helpers/python.mjs";

const EMAIL_FLAG = "SYMPHONY_EMAIL_QUEUE_ENABLED";

let moto;
before(async () => {
  // The first SendMessageBatch to the queue `refusing-email` is refused (AccessDenied).
  moto = await startMoto(["--sqs-refuse-sends", "refusing-email:1"]);
});
after(async () => {
  await moto?.stop();
});

const ids = (count, prefix) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`);

test("25 emails go out in 3 requests of at most ten", async () => {
  const stack = await deploy(moto, "tens");
  await stack.setFlags(ALL_ON);
  const client = stack.client();
  try {
    const emails = ids(25, "ten").map((id) => email(id));
    await moto.resetRequests();
    const result = await client.dispatchEmailQueueBatch(emails);
    const requests = await moto.requests();
    assert.equal(requests["SQS.SendMessageBatch"], 3);
    assert.equal(requests["DynamoDB.PutItem"], 25);
    assert.deepEqual(result.failed, []);
    assert.deepEqual(result.legacy, []);
    assert.deepEqual(result.duplicates, []);
    assert.deepEqual(result.dispatched.map((sent) => sent.emailId).sort(), emails.map((e) => e.emailId).sort());

    const messages = await stack.drain("email");
    assert.equal(messages.length, 25);
    const byId = new Map(result.dispatched.map((sent) => [sent.emailId, sent.messageId]));
    for (const message of messages) assert.equal(byId.get(message.envelope.id), message.messageId);
    const errors = await schemaErrors(messages.map((message) => message.envelope));
    assert.deepEqual(errors, messages.map(() => []));
    for (const row of await stack.rows()) assert.equal(row.status.S, "claimed");
  } finally {
    client.destroy();
    stack.close();
  }
});

test("large emails: no request carries more than the queue's 256 KiB", async () => {
  const stack = await deploy(moto, "sizes");
  await stack.setFlags(ALL_ON);
  const client = stack.client();
  try {
    // About 100 KiB each: two fit in 256 KiB, three do not.
    const emails = ids(12, "big").map((id) => email(id, { html: "x".repeat(100 * 1024) }));
    await moto.resetRequests();
    const result = await client.dispatchEmailQueueBatch(emails);
    assert.equal(result.dispatched.length, 12);
    assert.equal((await moto.requests())["SQS.SendMessageBatch"], 6);
    assert.equal((await stack.drain("email")).length, 12);
  } finally {
    client.destroy();
    stack.close();
  }
});

test("planRequests: ten entries at most, and never over the byte limit", () => {
  assert.deepEqual(planRequests(Array(23).fill(1), 10, 1000).map((r) => r.length), [10, 10, 3]);
  assert.deepEqual(planRequests([60, 50, 40, 100, 1], 10, 100), [[0], [1, 2], [3], [4]]);
  assert.deepEqual(planRequests([], 10, 100), []);
});

test("a 30 % rollout sends the emails whose bucket is below 30, and leaves the rest queued", async () => {
  const stack = await deploy(moto, "rollout");
  await stack.setFlags({ SYMPHONY_ENABLED: true, [EMAIL_FLAG]: [true, 30] });
  const client = stack.client();
  try {
    const emails = ids(60, "roll").map((id) => email(id));
    const result = await client.dispatchEmailQueueBatch(emails);
    const symphony = emails.map((e) => e.emailId).filter((id) => bucket(EMAIL_FLAG, id) < 30);
    const legacy = emails.map((e) => e.emailId).filter((id) => bucket(EMAIL_FLAG, id) >= 30);
    assert.ok(symphony.length > 5 && legacy.length > 20, "both routes are exercised");
    assert.deepEqual(result.dispatched.map((sent) => sent.emailId).sort(), symphony.sort());
    assert.deepEqual([...result.legacy].sort(), legacy.sort());
    assert.deepEqual(result.failed, []);
    const status = new Map((await stack.rows()).map((row) => [row.emailId.S, row.status.S]));
    for (const id of symphony) assert.equal(status.get(id), "claimed", id);
    for (const id of legacy) assert.equal(status.get(id), "queued", id);
    assert.deepEqual((await stack.drain("email")).map((m) => m.envelope.id).sort(), symphony.sort());
  } finally {
    client.destroy();
    stack.close();
  }
});

test("invalid emails, duplicates and conflicts are reported one by one; the rest go", async () => {
  const stack = await deploy(moto, "mixed");
  await stack.setFlags(ALL_ON);
  const client = stack.client();
  try {
    for (const id of ["mixed-sent", "mixed-failed", "mixed-claimed", "mixed-taken"]) {
      await client.dispatchEmailMessage(email(id));
    }
    await stack.drain("email");
    await stack.setRowStatus("mixed-sent", "sent");
    await stack.setRowStatus("mixed-failed", "failed");
    const result = await client.dispatchEmailQueueBatch([
      email("mixed-0"),
      email("mixed-1", { toEmail: "nobody" }),
      email("mixed-sent"),
      email("mixed-taken", { html: "<p>other</p>" }),
      { subject: "no ids" },
      email("mixed-5"),
      email("mixed-5"),
      email("mixed-failed"),
      email("mixed-claimed"),
      email("mixed-5", { subject: "another" }),
    ]);
    assert.deepEqual(
      result.dispatched.map(({ emailId, redispatched }) => ({ emailId, redispatched })),
      [
        { emailId: "mixed-0", redispatched: false },
        { emailId: "mixed-5", redispatched: false },
        // Claimed with this content, never taken: its envelope goes again.
        { emailId: "mixed-claimed", redispatched: true },
      ],
    );
    assert.deepEqual(result.duplicates, [
      { emailId: "mixed-sent", status: "sent" },
      // Given twice: the second follows the first, which left it claimed.
      { emailId: "mixed-5", status: "claimed" },
      // Failed for good: the app learns it will not go.
      { emailId: "mixed-failed", status: "failed" },
    ]);
    assert.deepEqual(
      result.failed.map(({ index, emailId, emailLeft }) => ({ index, emailId, emailLeft })),
      [
        { index: 1, emailId: "mixed-1", emailLeft: "none" },
        { index: 3, emailId: "mixed-taken", emailLeft: "none" },
        { index: 4, emailId: "", emailLeft: "none" },
        { index: 9, emailId: "mixed-5", emailLeft: "none" },
      ],
    );
    assert.match(result.failed[0].reason, /toEmail is not a valid email address/);
    assert.match(result.failed[1].reason, /already exists with a different html/);
    assert.match(result.failed[2].reason, /emailId is missing/);
    assert.match(result.failed[3].reason, /is given earlier in this batch \(at 5\) with a different subject/);
    const sent = (await stack.drain("email")).map((message) => message.envelope.id).sort();
    assert.deepEqual(sent, ["mixed-0", "mixed-5", "mixed-claimed"]);
    assert.equal((await stack.rows()).length, 6);
  } finally {
    client.destroy();
    stack.close();
  }
});

test("a request the queue refuses: its ten emails are reported and left queued; the rest go", async () => {
  const stack = await deploy(moto, "refusing");
  await stack.setFlags(ALL_ON);
  const client = stack.client();
  try {
    const emails = ids(25, "refused").map((id) => email(id));
    const result = await client.dispatchEmailQueueBatch(emails);
    assert.equal(result.dispatched.length, 15);
    assert.equal(result.failed.length, 10);
    for (const failure of result.failed) {
      assert.equal(failure.emailLeft, "queued");
      assert.match(failure.reason, /AccessDenied/);
      assert.match(failure.reason, /left queued/);
      const row = await getRow(stack.dynamodb, stack.tables.emails, failure.emailId);
      assert.equal(row.status.S, "queued");
      assert.equal(row.claimToken, undefined);
    }
    // The first ten: the request refused was the first chunk's.
    assert.deepEqual(result.failed.map((failure) => failure.index), [...Array(10).keys()]);
    const failedIds = new Set(result.failed.map((failure) => failure.emailId));
    const sent = (await stack.drain("email")).map((message) => message.envelope.id);
    assert.equal(sent.length, 15);
    assert.ok(sent.every((id) => !failedIds.has(id)));
  } finally {
    client.destroy();
    stack.close();
  }
});

/** The real SQS client, with answers of SendMessageBatch rewritten by `rewrite(output, call)`. */
function rewritingSqs(sqs, rewrite) {
  let calls = 0;
  return {
    calls: () => calls,
    async send(command) {
      const output = await sqs.send(command);
      if (!(command instanceof SendMessageBatchCommand)) return output;
      calls += 1;
      return rewrite(output, calls);
    },
    destroy() {},
  };
}

test("entries a SendMessageBatch answer fails are reported per email, never silently", async () => {
  const stack = await deploy(moto, "partial");
  await stack.setFlags(ALL_ON);
  // The service says it failed the second entry, for the sender's fault (the message went
  // out all the same on moto: the client must still not count it as sent).
  const sqs = rewritingSqs(stack.sqs, (output) => {
    const [first, second, ...rest] = output.Successful;
    return {
      ...output,
      Successful: [first, ...rest],
      Failed: [{ Id: second.Id, SenderFault: true, Code: "InvalidParameterValue", Message: "refused (test)" }],
    };
  });
  const client = stack.client({ sqs });
  try {
    const result = await client.dispatchEmailQueueBatch(ids(3, "partial").map((id) => email(id)));
    assert.deepEqual(result.dispatched.map((sent) => sent.emailId), ["partial-0", "partial-2"]);
    assert.equal(result.failed.length, 1);
    assert.equal(result.failed[0].emailId, "partial-1");
    assert.match(result.failed[0].reason, /InvalidParameterValue: refused \(test\)/);
    // What the client says is where the row is.
    const row = await getRow(stack.dynamodb, stack.tables.emails, "partial-1");
    assert.equal(result.failed[0].emailLeft, row.status.S);
    // What is on the queue: moto took all three (only the answer said otherwise). The
    // released row is the tick's too: a second message, which begin_send makes harmless.
    const sent = (await stack.drain("email")).map((message) => message.envelope.id).sort();
    assert.deepEqual(sent, ["partial-0", "partial-1", "partial-2"]);
  } finally {
    client.destroy();
    stack.close();
  }
});

test("an entry the service failed on its side is sent again", async () => {
  const stack = await deploy(moto, "retried");
  await stack.setFlags(ALL_ON);
  const sqs = rewritingSqs(stack.sqs, (output, call) => {
    if (call > 1) return output;
    const [first, ...rest] = output.Successful;
    return {
      ...output,
      Successful: rest,
      Failed: [{ Id: first.Id, SenderFault: false, Code: "InternalError", Message: "try again (test)" }],
    };
  });
  const client = stack.client({ sqs });
  try {
    const result = await client.dispatchEmailQueueBatch(ids(3, "retried").map((id) => email(id)));
    assert.equal(result.dispatched.length, 3);
    assert.deepEqual(result.failed, []);
    assert.equal(sqs.calls(), 2);
    // On the queue: the three, and the first twice (moto had taken it; the answer said
    // it failed). A real SQS does not enqueue an entry it fails.
    const sent = (await stack.drain("email")).map((message) => message.envelope.id).sort();
    assert.deepEqual(sent, ["retried-0", "retried-0", "retried-1", "retried-2"]);
  } finally {
    client.destroy();
    stack.close();
  }
});

/** `client` (the test's own), each command's name pushed on `log` before it is sent. */
function recording(client, log, intercept = async () => undefined) {
  return {
    async send(command, ...rest) {
      const name = command.constructor.name.replace(/Command$/, "");
      log.push(name);
      await intercept(command, name);
      return client.send(command, ...rest);
    },
    destroy() {},
  };
}

/** `["a", "a", "b"]` → `["a×2", "b×1"]`. */
function runs(log) {
  const out = [];
  for (const name of log) {
    const last = out[out.length - 1];
    if (last && last[0] === name) last[1] += 1;
    else out.push([name, 1]);
  }
  return out.map(([name, count]) => `${name}×${count}`);
}

test("a batch writes ten rows, sends them, then the next ten: a crash mid-batch leaves one chunk unsent", async () => {
  const stack = await deploy(moto, "chunks");
  await stack.setFlags(ALL_ON);
  const log = [];
  let reached;
  const atSecondSend = new Promise((resolve) => (reached = resolve));
  let resume;
  const gate = new Promise((resolve) => (resume = resolve));
  let sends = 0;
  const dynamodb = recording(stack.dynamodb, log);
  // The second chunk's send stops there, as a process that died at that moment would;
  // then, resumed, it fails as a timeout (its outcome unknown).
  const sqs = recording(stack.sqs, log, async (_command, name) => {
    if (name !== "SendMessageBatch" || ++sends !== 2) return;
    reached();
    await gate;
    throw Object.assign(new Error("no answer (test)"), { name: "TimeoutError" });
  });
  const client = stack.client({ dynamodb, sqs });
  try {
    const emails = ids(25, "chunk").map((id) => email(id));
    const batch = client.dispatchEmailQueueBatch(emails);
    await atSecondSend;

    // A crash now leaves: the first ten claimed and on the queue, the next ten claimed
    // without a message (the tick takes them over after the lease), the last five unwritten.
    const rows = await stack.rows();
    assert.deepEqual(rows.map((row) => row.emailId.S).sort(), ids(20, "chunk").sort());
    assert.ok(rows.every((row) => row.status.S === "claimed"));
    const onQueue = (await stack.drain("email")).map((message) => message.envelope.id).sort();
    assert.deepEqual(onQueue, ids(10, "chunk").sort());

    resume();
    const result = await batch;
    assert.deepEqual(result.failed.map((failure) => failure.index), [...Array(10).keys()].map((i) => i + 10));
    // The sends that failed had their claims given back: the next tick sends them.
    assert.ok(result.failed.every((failure) => failure.emailLeft === "queued"));
    assert.deepEqual(
      result.dispatched.map((sent) => sent.emailId),
      [...ids(10, "chunk"), ...ids(25, "chunk").slice(20)],
    );
    const writesAndSends = log.filter((name) => ["PutItem", "SendMessageBatch", "UpdateItem"].includes(name));
    assert.deepEqual(runs(writesAndSends), [
      "PutItem×10",
      "SendMessageBatch×1",
      "PutItem×10",
      "SendMessageBatch×1",
      "UpdateItem×10",
      "PutItem×5",
      "SendMessageBatch×1",
    ]);
    assert.equal((await stack.drain("email")).length, 5);
  } finally {
    client.destroy();
    stack.close();
  }
});
