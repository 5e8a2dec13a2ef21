// The flags as the Rust functions read them: the bucket's test vectors, the rule, the
// fallbacks, invalid items, consistent reads, and the cache.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";

import { GLOBAL_FLAG, JOB_FLAGS, bucket, routeFor } from "../dist/index.js";
import { deploy } from "./helpers/deployment.mjs";
import { startMoto } from "./helpers/moto.mjs";
import { runPython } from "./helpers/python.mjs";

const EMAIL_FLAG = JOB_FLAGS.email;

test("the bucket matches the Rust test vectors (flags.rs, contracts.md)", () => {
  assert.equal(bucket(EMAIL_FLAG, "email-1"), 66);
  assert.equal(bucket(EMAIL_FLAG, "email-2"), 45);
});

test("the bucket matches an independent computation (Python hashlib) for many ids", async () => {
  const units = [
    ...Array.from({ length: 200 }, (_, index) => [EMAIL_FLAG, `email-${index}`]),
    [JOB_FLAGS.campaign, "campaign-ü-1"],
    [JOB_FLAGS.sms, "enrollment:with:colons"],
    [EMAIL_FLAG, ""],
  ];
  const expected = await runPython(
    `
import hashlib, json, sys
print(json.dumps([int.from_bytes(hashlib.sha256(f"{flag}:{unit}".encode("utf-8")).digest()[:4], "big") % 100
                  for flag, unit in json.load(sys.stdin)]))
`,
    units,
  );
  assert.deepEqual(
    units.map(([flag, unit]) => bucket(flag, unit)),
    expected,
  );
});

test("the rule: both flags on and the bucket below the job's rollout", () => {
  const state = (name, enabled, rolloutPercent = 100) => ({ name, enabled, rolloutPercent, source: "table" });
  const flags = (global, job, percent) => ({ global: state(GLOBAL_FLAG, global), job: state(EMAIL_FLAG, job, percent) });
  const units = Array.from({ length: 300 }, (_, index) => `e${index}`);
  assert.ok(units.every((unit) => routeFor(flags(true, true, 100), unit) === "symphony"));
  assert.ok(units.every((unit) => routeFor(flags(false, true, 100), unit) === "legacy"));
  assert.ok(units.every((unit) => routeFor(flags(true, false, 100), unit) === "legacy"));
  assert.ok(units.every((unit) => routeFor(flags(true, true, 0), unit) === "legacy"));
  for (const unit of units) {
    assert.equal(routeFor(flags(true, true, 30), unit) === "symphony", bucket(EMAIL_FLAG, unit) < 30);
  }
  // The global item's rolloutPercent is not used.
  const globalAtZero = { global: state(GLOBAL_FLAG, true, 0), job: state(EMAIL_FLAG, true, 100) };
  assert.equal(routeFor(globalAtZero, "e1"), "symphony");
  assert.equal(routeFor({ ...flags(true, true, 100), tableError: "unreadable" }, "e1"), "legacy");
});

describe("flags read from the table", () => {
  let moto;
  let stack;
  before(async () => {
    moto = await startMoto();
    stack = await deploy(moto, "flags");
  });
  after(async () => {
    stack?.close();
    await moto?.stop();
  });

  test("no items: off, from the default; the caller's defaults stand in for the functions' environment", async () => {
    await stack.setFlags({ [GLOBAL_FLAG]: null, [EMAIL_FLAG]: null });
    const client = stack.client();
    const flags = await client.evaluateFlags("email");
    assert.deepEqual(flags, {
      global: { name: GLOBAL_FLAG, enabled: false, rolloutPercent: 100, source: "default" },
      job: { name: EMAIL_FLAG, enabled: false, rolloutPercent: 100, source: "default" },
    });
    assert.equal(await client.shouldUseSymphonyFor("email", "email-1"), false);
    const withDefaults = stack.client({ flagDefaults: { [GLOBAL_FLAG]: true, [EMAIL_FLAG]: true } });
    assert.equal(await withDefaults.shouldUseSymphonyFor("email", "email-1"), true);
    assert.equal((await withDefaults.evaluateFlags("email")).job.source, "default");
    client.destroy();
    withDefaults.destroy();
  });

  test("a partial rollout routes each unit by its bucket", async () => {
    await stack.setFlags({ [GLOBAL_FLAG]: true, [EMAIL_FLAG]: [true, 50] });
    const client = stack.client();
    for (const unit of ["email-1", "email-2", "email-3", "email-4", "email-5"]) {
      assert.equal(await client.shouldUseSymphonyFor("email", unit), bucket(EMAIL_FLAG, unit) < 50, unit);
    }
    assert.equal(await client.shouldUseSymphonyForEmailQueue("email-2"), true); // bucket 45
    assert.equal(await client.shouldUseSymphonyForEmailQueue("email-1"), false); // bucket 66
    assert.equal(await client.shouldUseSymphonyFor("email"), true, "some units go the symphony way");
    await stack.setFlags({ [EMAIL_FLAG]: [true, 0] });
    assert.equal(await client.shouldUseSymphonyFor("email"), false);
    await stack.setFlags({ [GLOBAL_FLAG]: false, [EMAIL_FLAG]: true });
    assert.equal(await client.shouldUseSymphonyFor("email"), false);
    assert.equal(await client.shouldUseSymphonyFor("campaign", "c1"), false);
    client.destroy();
  });

  test("an invalid item sends every unit legacy, with the reason", async () => {
    const client = stack.client();
    await stack.setFlags({ [GLOBAL_FLAG]: true });
    await stack.dynamodb.send(
      new PutItemCommand({
        TableName: stack.tables.flags,
        Item: { name: { S: EMAIL_FLAG }, enabled: { S: "yes" } },
      }),
    );
    let flags = await client.evaluateFlags("email");
    assert.match(flags.tableError, /SYMPHONY_EMAIL_QUEUE_ENABLED .* invalid: enabled must be a BOOL/);
    assert.equal(await client.shouldUseSymphonyFor("email", "email-2"), false);
    await stack.setFlags({ [EMAIL_FLAG]: [true, 150] });
    flags = await client.evaluateFlags("email");
    assert.match(flags.tableError, /rolloutPercent must be a whole number from 0 to 100, found 150/);
    client.destroy();
  });

  test("an unreadable table sends every unit legacy and says so", async () => {
    const warnings = [];
    const client = stack.client({
      tables: { flags: "no-such-table" },
      flagCacheTtlMs: 60_000,
      logger: { warn: (message) => warnings.push(message) },
    });
    const flags = await client.evaluateFlags("email");
    assert.match(flags.tableError, /no-such-table/);
    assert.equal(await client.shouldUseSymphonyFor("email", "email-2"), false);
    assert.match(warnings[0], /^FLAG TABLE UNREADABLE/);
    // A failure is not cached: each call reads again.
    await moto.resetRequests();
    await client.evaluateFlags("email");
    assert.equal((await moto.requests())["DynamoDB.GetItem"], 2);
    client.destroy();
  });

  test("reads are consistent GetItems of the global and the job item", async () => {
    const seen = [];
    const recording = {
      send(command) {
        seen.push(command);
        return stack.dynamodb.send(command);
      },
      destroy() {},
    };
    const client = stack.client({ dynamodb: recording });
    await client.evaluateFlags("sms");
    assert.deepEqual(
      seen.map((command) => [command.constructor, command.input.Key.name.S, command.input.ConsistentRead]),
      [
        [GetItemCommand, GLOBAL_FLAG, true],
        [GetItemCommand, JOB_FLAGS.sms, true],
      ],
    );
  });

  test("the cache: reused for its TTL, read at every call with 0", async () => {
    await stack.setFlags({ [GLOBAL_FLAG]: true, [EMAIL_FLAG]: true });
    const cached = stack.client({ flagCacheTtlMs: 60_000 });
    const uncached = stack.client({ flagCacheTtlMs: 0 });
    assert.equal(await cached.shouldUseSymphonyFor("email", "email-1"), true);
    assert.equal(await uncached.shouldUseSymphonyFor("email", "email-1"), true);

    await stack.setFlags({ [EMAIL_FLAG]: false });
    await moto.resetRequests();
    assert.equal(await cached.shouldUseSymphonyFor("email", "email-1"), true, "still the cached flag");
    assert.equal((await moto.requests())["DynamoDB.GetItem"], undefined);
    assert.equal(await uncached.shouldUseSymphonyFor("email", "email-1"), false, "the flip, at once");
    cached.clearFlagCache();
    assert.equal(await cached.shouldUseSymphonyFor("email", "email-1"), false);

    // Concurrent callers share one read per flag.
    await moto.resetRequests();
    cached.clearFlagCache();
    await Promise.all(Array.from({ length: 20 }, () => cached.evaluateFlags("email")));
    assert.equal((await moto.requests())["DynamoDB.GetItem"], 2);
    cached.destroy();
    uncached.destroy();
  });

  test("a job that is not one is refused", async () => {
    const client = stack.client();
    await assert.rejects(client.shouldUseSymphonyFor("newsletter"), { name: "SymphonyValidationError", field: "job" });
    client.destroy();
  });
});
