#!/usr/bin/env node
// Dispatches one email through the built package and prints
// {"messageId", "emailId", "route", "status", "redispatched"} as JSON.
// Build first: npm ci && npm run build.
//
// Configuration, JSON, from the first argument or else SYMPHONY_DISPATCH_CONFIG:
//   { "stack": "dev", "region": "us-east-1", "endpoint": "http://127.0.0.1:5000",
//     "queueUrls": { "email": "..." }, "maxMessageBytes": 262144, "source": "webapp",
//     "email": { "emailId": "...", "userId": "...", "mailboxId": "...", "toEmail": "...",
//                "subject": "...", "html": "...", "fromName": "...", "fromEmail": "..." } }
// Only "email" is required with "stack" and "region" (or AWS_REGION); credentials come
// from the AWS environment (AWS_ACCESS_KEY_ID, a profile, a role) unless "credentials"
// gives { "accessKeyId", "secretAccessKey", "sessionToken"? }.
// On failure: exit 1, with {"error", "name", "field"?, "emailLeft"?} as JSON on stderr.

import { createSymphonyClient } from "@symphony/client";

const text = process.argv[2] ?? process.env.SYMPHONY_DISPATCH_CONFIG;
let client;
try {
  if (!text) throw new Error("give the configuration as JSON: first argument or SYMPHONY_DISPATCH_CONFIG");
  const { email, ...options } = JSON.parse(text);
  if (!email) throw new Error('the configuration has no "email"');
  client = createSymphonyClient({ flagCacheTtlMs: 0, ...options });
  const { messageId, emailId, route, status, redispatched } = await client.dispatchEmailMessage(email);
  process.stdout.write(`${JSON.stringify({ messageId, emailId, route, status, redispatched })}\n`);
} catch (error) {
  const report = { error: error.message, name: error.name };
  if (error.field !== undefined) report.field = error.field;
  if (error.emailLeft !== undefined) report.emailLeft = error.emailLeft;
  process.stderr.write(`${JSON.stringify(report)}\n`);
  process.exitCode = 1;
} finally {
  client?.destroy();
}
