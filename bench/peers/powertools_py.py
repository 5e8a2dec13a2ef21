"""Powertools for AWS Lambda (Python): process_partial_response over the same event, the
record handler checking the same field. Prints as node-loop.mjs does."""
import json
import resource
import sys
import time

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

path, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
text = open(path, encoding="utf-8").read()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record):
    envelope = json.loads(record.body)
    if envelope["type"] != "EmailMessage" or "@" not in str(envelope["payload"]["toEmail"]):
        raise ValueError(f"toEmail {envelope['payload']['toEmail']} is not an address")


rates, failures, records = [], 0, 0
for round_number in range(rounds + 2):
    started = time.perf_counter()
    event = json.loads(text)
    response = process_partial_response(event=event, record_handler=record_handler, processor=processor, context=None)
    seconds = time.perf_counter() - started
    records = len(event["Records"])
    failures = len(response["batchItemFailures"])
    if round_number >= 2:  # two warm-up rounds
        rates.append(records / seconds)
rates.sort()
print(f"{rates[len(rates) // 2]} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} 0 {failures} {records}")
