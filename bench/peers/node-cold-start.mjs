// A Node.js 20 function as a custom runtime would run it: create the SQS and DynamoDB
// clients (no call), then ask the Runtime API for the next invocation, answer it, and ask
// again. The cold-start bench times process start to the first GET /next.
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

const sqs = new SQSClient({});
const dynamo = new DynamoDBClient({});
const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const id = next.headers.get('lambda-runtime-aws-request-id');
  await next.text();
  await fetch(`${api}/invocation/${id}/response`, {
    method: 'POST',
    body: JSON.stringify({ ok: Boolean(sqs && dynamo) }),
  });
}
