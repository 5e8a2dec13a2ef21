// Powertools for AWS Lambda (TypeScript): processPartialResponseSync over the same event,
// the record handler checking the same field. Prints as node-loop.mjs does.
import { readFileSync } from 'node:fs';
import { BatchProcessorSync, EventType, processPartialResponseSync } from '@aws-lambda-powertools/batch';

const [file, roundsArg] = process.argv.slice(2);
const text = readFileSync(file, 'utf8');
const rounds = Number(roundsArg ?? 25);
const processor = new BatchProcessorSync(EventType.SQS);
const recordHandler = (record) => {
  const envelope = JSON.parse(record.body);
  if (envelope.type !== 'EmailMessage' || !String(envelope.payload.toEmail).includes('@')) {
    throw new Error(`toEmail ${envelope.payload.toEmail} is not an address`);
  }
};
const rates = [];
let failures = 0;
let records = 0;
for (let round = 0; round < rounds + 2; round++) {
  const started = process.hrtime.bigint();
  const event = JSON.parse(text);
  const response = processPartialResponseSync(event, recordHandler, processor, { context: {} });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  records = event.Records.length;
  failures = response.batchItemFailures.length;
  if (round >= 2) rates.push(records / seconds); // two warm-up rounds
}
rates.sort((a, b) => a - b);
console.log(`${rates[Math.floor(rates.length / 2)]} ${process.resourceUsage().maxRSS} 0 ${failures} ${records}`);
