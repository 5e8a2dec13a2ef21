// dispatchEmailMessage when a write's answer is lost, a write is refused, or the release
// after a failed send fails: against moto, with its fault options (scripts/moto_server.py)
// or a client whose answers a test rewrites. Every error says where the email is.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";

import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";

import { SymphonyConflictError, SymphonyDispatchError, createSymphonyClient } from "../dist/index.js";
import { ALL_ON, deploy, email } from "./helpers/deployment.mjs";
import { beginSend, getRow } from "./helpers/ledger.mjs";
import { CREDENTIALS, REGION, startMoto } from "./helpers/moto.mjs";

/** The client's tries of one ambiguous write (WRITE_ATTEMPTS in src/email-rows.ts). */
const WRITE_ATTEMPTS = 3;
const seconds = () => Math.floor(Date.now() / 1000);

/** A DynamoDB client that sends each request once: a lost answer reaches the Symphony client. */
function noRetries(moto) {
  return new DynamoDBClient({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS, maxAttempts: 1 });
}

/** Forwards to `client`; `around(command, forward)` may do otherwise. */
function wrapping(client, around) {
  return {
    send: (command, ...rest) => around(command, () => client.send(command, ...rest)),
    destroy() {},
  };
}

const lost = () => Object.assign(new Error("the answer was lost (test)"), { name: "TimeoutError" });

describe("a PutItem whose answer is lost", () => {
  let moto;
  let stack;
  before(async () => {
    // Every PutItem is applied, then answered 500; the same request again is answered.
    moto = await startMoto(["--dynamodb-lose-put-answers", "1"]);
    stack = await deploy(moto, "lost");
    await stack.setFlags(ALL_ON);
  });
  after(async () => {
    stack?.close();
    await moto?.stop();
  });

  test("retried by the SDK, meets its own claimed row: sent once", async () => {
    const client = stack.client();
    try {
      await moto.resetRequests();
      const result = await client.dispatchEmailMessage(email("lost-sdk"));
      assert.equal(result.route, "symphony");
      assert.equal(result.redispatched, false);
      assert.equal((await moto.requests())["DynamoDB.PutItem"], 2);
      assert.equal((await getRow(stack.dynamodb, stack.tables.emails, "lost-sdk")).status.S, "claimed");
      const messages = await stack.drain("email");
      assert.deepEqual(messages.map((message) => message.messageId), [result.messageId]);
    } finally {
      client.destroy();
    }
  });

  test("retried by the client itself (its DynamoDB client does not retry): sent once", async () => {
    const dynamodb = noRetries(moto);
    const client = stack.client({ dynamodb });
    try {
      await moto.resetRequests();
      const result = await client.dispatchEmailMessage(email("lost-own"));
      assert.equal(result.route, "symphony");
      assert.equal(result.redispatched, false);
      assert.equal((await moto.requests())["DynamoDB.PutItem"], 2);
      const row = await getRow(stack.dynamodb, stack.tables.emails, "lost-own");
      assert.equal(row.status.S, "claimed");
      assert.equal((await stack.drain("email")).length, 1);
    } finally {
      client.destroy();
      dynamodb.destroy();
    }
  });

  test("on the legacy route the SDK's retry meets the queued row it wrote: legacy, nothing sent", async () => {
    await stack.setFlags({ SYMPHONY_ENABLED: false });
    const client = stack.client();
    try {
      await moto.resetRequests();
      const result = await client.dispatchEmailMessage(email("lost-legacy-sdk"));
      assert.deepEqual(result, { emailId: "lost-legacy-sdk", route: "legacy", messageId: null, status: "queued", redispatched: false });
      assert.equal((await moto.requests())["DynamoDB.PutItem"], 2);
      assert.equal((await stack.drain("email")).length, 0);
    } finally {
      client.destroy();
      await stack.setFlags(ALL_ON);
    }
  });

  test("on the legacy route the client's retry meets the queued row it wrote: legacy, nothing sent", async () => {
    await stack.setFlags({ SYMPHONY_ENABLED: false });
    const dynamodb = noRetries(moto);
    const client = stack.client({ dynamodb });
    try {
      await moto.resetRequests();
      const result = await client.dispatchEmailMessage(email("lost-legacy"));
      assert.deepEqual(result, { emailId: "lost-legacy", route: "legacy", messageId: null, status: "queued", redispatched: false });
      assert.equal((await moto.requests())["DynamoDB.PutItem"], 2);
      assert.equal((await getRow(stack.dynamodb, stack.tables.emails, "lost-legacy")).status.S, "queued");
      assert.equal((await stack.drain("email")).length, 0);
    } finally {
      client.destroy();
      dynamodb.destroy();
      await stack.setFlags(ALL_ON);
    }
  });
});

describe("writes refused, answers lost for good, releases that fail", () => {
  let moto;
  let stack;
  let nosend;
  before(async () => {
    // UpdateItems naming `release-fails` are answered 500, unapplied; every
    // SendMessageBatch to the queue `nosend-email` is refused (AccessDenied).
    moto = await startMoto(["--dynamodb-refuse-updates", "release-fails", "--sqs-refuse-sends", "nosend-email:1000"]);
    stack = await deploy(moto, "faults");
    await stack.setFlags(ALL_ON);
    nosend = await deploy(moto, "nosend");
    await nosend.setFlags(ALL_ON);
  });
  after(async () => {
    stack?.close();
    nosend?.close();
    await moto?.stop();
  });

  test("a PutItem whose every answer is lost: unknown, and dispatching again sends it", async () => {
    let puts = 0;
    // Each try is applied (or meets the row the first made), and its answer lost.
    const dynamodb = wrapping(stack.dynamodb, async (command, forward) => {
      if (!(command instanceof PutItemCommand)) return forward();
      puts += 1;
      await forward().catch(() => undefined);
      throw lost();
    });
    const client = stack.client({ dynamodb });
    try {
      await assert.rejects(client.dispatchEmailMessage(email("lost-for-good")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "unknown");
        assert.equal(error.operation, "DynamoDB.PutItem");
        assert.equal(error.code, "TimeoutError");
        assert.match(error.message, /could not be learned: dispatching it again is safe/);
        return true;
      });
      assert.equal(puts, WRITE_ATTEMPTS);
    } finally {
      client.destroy();
    }
    // The row was written, claimed, and nothing sent: as after a dispatch that died there.
    const row = await getRow(stack.dynamodb, stack.tables.emails, "lost-for-good");
    assert.equal(row.status.S, "claimed");
    assert.equal((await stack.drain("email")).length, 0);

    // The app dispatches it again: the claimed row with this content is sent now.
    const again = stack.client();
    try {
      const result = await again.dispatchEmailMessage(email("lost-for-good"));
      assert.equal(result.route, "symphony");
      assert.equal(result.redispatched, true);
      const [message, ...others] = await stack.drain("email");
      assert.equal(others.length, 0);
      assert.equal(message.messageId, result.messageId);
      assert.deepEqual(await getRow(stack.dynamodb, stack.tables.emails, "lost-for-good"), row);
    } finally {
      again.destroy();
    }
  });

  test("a PutItem the service refuses (no such table): none, tried once", async () => {
    const client = stack.client({ tables: { flags: stack.tables.flags, emails: "faults-no-such-table" } });
    try {
      await moto.resetRequests();
      await assert.rejects(client.dispatchEmailMessage(email("refused-write")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "none");
        assert.equal(error.code, "ResourceNotFoundException");
        assert.match(error.message, /nothing was written for email refused-write/);
        return true;
      });
      assert.equal((await moto.requests())["DynamoDB.PutItem"], 1);
    } finally {
      client.destroy();
    }
  });

  test("an email queue that cannot be found: none", async () => {
    const client = stack.client({ queueUrls: { email: `${moto.endpoint}/123456789012/faults-no-such-queue` }, maxMessageBytes: undefined });
    try {
      await assert.rejects(client.dispatchEmailMessage(email("no-queue")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "none");
        assert.equal(error.operation, "SQS.GetQueueAttributes");
        return true;
      });
      assert.equal(await getRow(stack.dynamodb, stack.tables.emails, "no-queue"), undefined);
    } finally {
      client.destroy();
    }
  });

  test("a failed condition from another copy of the SDK (not an instance of its class) is read by name", async () => {
    // Errors re-made as plain objects, as a DynamoDBClient from another SDK copy raises them.
    const dynamodb = wrapping(stack.dynamodb, (_command, forward) =>
      forward().catch((error) => {
        throw Object.assign(new Error(error.message), { name: error.name, $metadata: error.$metadata, Item: error.Item });
      }),
    );
    const client = stack.client({ dynamodb });
    try {
      await client.dispatchEmailMessage(email("other-sdk"));
      await stack.drain("email");
      await stack.setRowStatus("other-sdk", "failed");
      const again = await client.dispatchEmailMessage(email("other-sdk"));
      assert.deepEqual(again, { emailId: "other-sdk", route: "duplicate", messageId: null, status: "failed", redispatched: false });
      await assert.rejects(client.dispatchEmailMessage(email("other-sdk", { subject: "Another" })), (error) => {
        assert.ok(error instanceof SymphonyConflictError, error.stack);
        assert.deepEqual(error.differingFields, ["subject"]);
        assert.equal(error.emailLeft, "none");
        return true;
      });
      assert.equal((await stack.drain("email")).length, 0);
    } finally {
      client.destroy();
    }
  });

  test("the send refused and the release failing (500 at every try): unknown, the row still claimed", async () => {
    const client = nosend.client();
    try {
      await moto.resetRequests();
      await assert.rejects(client.dispatchEmailMessage(email("release-fails-1")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "unknown");
        assert.equal(error.code, "AccessDenied", "the error is the send's");
        assert.match(error.message, /where email release-fails-1 is could not be learned/);
        return true;
      });
      assert.ok((await moto.requests())["DynamoDB.UpdateItem"] >= WRITE_ATTEMPTS);
      const row = await getRow(nosend.dynamodb, nosend.tables.emails, "release-fails-1");
      assert.equal(row.status.S, "claimed", "the tick takes it over when the lease runs out");
    } finally {
      client.destroy();
    }
  });

  test("the send refused and the release refused (AccessDenied): claimed, as it was left", async () => {
    let updates = 0;
    const dynamodb = wrapping(nosend.dynamodb, async (command, forward) => {
      if (!(command instanceof UpdateItemCommand)) return forward();
      updates += 1;
      throw Object.assign(new Error("not allowed (test)"), {
        name: "AccessDeniedException",
        $metadata: { httpStatusCode: 400 },
      });
    });
    const client = nosend.client({ dynamodb });
    try {
      await assert.rejects(client.dispatchEmailMessage(email("release-denied")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "claimed");
        assert.match(error.message, /stays claimed/);
        return true;
      });
      assert.equal(updates, 1, "a refusal is not tried again");
      const row = await getRow(nosend.dynamodb, nosend.tables.emails, "release-denied");
      assert.equal(row.status.S, "claimed");
    } finally {
      client.destroy();
    }
  });

  test("a send whose answer is lost, its message already taken by a worker: the release finds it sending", async () => {
    const sqs = wrapping(stack.sqs, async (command, forward) => {
      if (!(command instanceof SendMessageBatchCommand)) return forward();
      await forward();
      // A worker received it and began sending before the client heard back (mirror of begin_send).
      assert.equal(await beginSend(stack.dynamodb, stack.tables.emails, "taken-meanwhile", seconds()), true);
      throw lost();
    });
    const client = stack.client({ sqs });
    try {
      await assert.rejects(client.dispatchEmailMessage(email("taken-meanwhile")), (error) => {
        assert.ok(error instanceof SymphonyDispatchError, error.stack);
        assert.equal(error.emailLeft, "sending");
        assert.match(error.message, /is being sent: a worker has its message/);
        return true;
      });
      assert.equal((await getRow(stack.dynamodb, stack.tables.emails, "taken-meanwhile")).status.S, "sending");
      assert.equal((await stack.drain("email")).length, 1);
    } finally {
      client.destroy();
    }
  });
});

test("a service that never answers: the dispatch gives up within seconds (request timeouts)", async () => {
  // Accepts connections and reads requests, never answers.
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${server.address().port}`;
  const client = createSymphonyClient({
    stack: "silent",
    region: REGION,
    endpoint,
    credentials: CREDENTIALS,
    queueUrls: { email: `${endpoint}/123456789012/silent-email` },
    maxMessageBytes: 262_144,
    requestTimeoutMs: 200,
    logger: null,
  });
  const started = Date.now();
  try {
    await assert.rejects(client.dispatchEmailMessage(email("never-answered")), (error) => {
      assert.ok(error instanceof SymphonyDispatchError, error.stack);
      assert.equal(error.operation, "DynamoDB.PutItem");
      assert.equal(error.code, "TimeoutError");
      // A request that timed out may have been applied.
      assert.equal(error.emailLeft, "unknown");
      return true;
    });
    assert.ok(Date.now() - started < 15_000, `gave up after ${Date.now() - started} ms`);
  } finally {
    client.destroy();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
