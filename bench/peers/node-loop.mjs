// A hand-written Node.js worker loop: parse the event, parse each body, check one field,
// collect the failures. Prints "records_per_second peak_rss_kib failures records".
import { readFileSync } from 'node:fs';

const [file, roundsArg] = process.argv.slice(2);
const text = readFileSync(file, 'utf8');
const rounds = Number(roundsArg ?? 25);
const rates = [];
let failures = 0;
let records = 0;
for (let round = 0; round < rounds + 2; round++) {
  const started = process.hrtime.bigint();
  const event = JSON.parse(text);
  const batchItemFailures = [];
  for (const record of event.Records) {
    let ok = false;
    try {
      const envelope = JSON.parse(record.body);
      ok = envelope.type === 'EmailMessage' && typeof envelope.payload.toEmail === 'string'
        && envelope.payload.toEmail.includes('@');
    } catch {
      ok = false;
    }
    if (!ok) batchItemFailures.push({ itemIdentifier: record.messageId });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  records = event.Records.length;
  failures = batchItemFailures.length;
  if (round >= 2) rates.push(records / seconds); // two warm-up rounds
}
rates.sort((a, b) => a - b);
console.log(`${rates[Math.floor(rates.length / 2)]} ${process.resourceUsage().maxRSS} 0 ${failures} ${records}`);
