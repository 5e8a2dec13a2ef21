// The job queues: their URLs and size limits (resolved once), and SendMessageBatch at most
// ten entries and at most one queue message's worth of bytes a call, with every entry
// answered: sent with its message id, or failed with the reason.

import { createHash } from "node:crypto";

import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from "@aws-sdk/client-sqs";

import type { OutgoingMessage } from "./envelope.js";
import { SymphonyAwsError, certainlyNotApplied } from "./errors.js";
import type { Job } from "./flags.js";

/** SQS takes at most ten entries a SendMessageBatch. */
export const MAX_BATCH_ENTRIES = 10;
/** The service's ceiling on one message (and on one batch request): 1 MiB. */
export const SQS_MAX_MESSAGE_BYTES = 1_048_576;
/** Batch requests in flight at once. */
const REQUESTS_IN_FLIGHT = 4;
/** Entries the service failed on its side are sent again this many times. */
const ENTRY_RETRIES = 2;
const RETRY_DELAY_MS = 100;

export interface ResolvedQueue {
  url: string;
  /** The queue's MaximumMessageSize. */
  maxMessageBytes: number;
  /** A FIFO queue's URL ends in `.fifo`. */
  fifo: boolean;
}

export type SendResult =
  | { ok: true; messageId: string }
  /**
   * Not known to be on the queue. `notSent`: certainly not (the service refused the
   * request, or failed the entry); otherwise it may be (a lost answer).
   */
  | { ok: false; reason: string; error: SymphonyAwsError; notSent: boolean };

export interface QueuesOptions {
  sqs: SQSClient;
  /** Each job's queue name (`<stack>-email`...), used when its URL is not given. */
  names: Partial<Record<Job, string>>;
  urls: Partial<Record<Job, string>>;
  /** The queues' MaximumMessageSize when known; read from each queue otherwise. */
  maxMessageBytes: number | undefined;
}

/**
 * Groups message sizes, in order, into requests of at most `maxEntries` entries and
 * `maxBytes` bytes. Every size must already be within `maxBytes`.
 */
export function planRequests(sizes: readonly number[], maxEntries: number, maxBytes: number): number[][] {
  const requests: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  sizes.forEach((size, index) => {
    if (current.length > 0 && (current.length === maxEntries || bytes + size > maxBytes)) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += size;
  });
  if (current.length > 0) requests.push(current);
  return requests;
}

export class Queues {
  readonly #options: QueuesOptions;
  readonly #resolved = new Map<Job, Promise<ResolvedQueue>>();

  constructor(options: QueuesOptions) {
    this.#options = options;
  }

  /** The job's queue: its URL (given, or by GetQueueUrl) and its size limit. */
  resolve(job: Job): Promise<ResolvedQueue> {
    let queue = this.#resolved.get(job);
    if (!queue) {
      queue = this.#lookUp(job);
      this.#resolved.set(job, queue);
      // A failed look-up is not kept: the next call asks again.
      queue.catch(() => this.#resolved.delete(job));
    }
    return queue;
  }

  async #lookUp(job: Job): Promise<ResolvedQueue> {
    const { sqs, names, urls, maxMessageBytes } = this.#options;
    let url = urls[job];
    if (!url) {
      const name = names[job]!;
      try {
        url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
      } catch (error) {
        throw new SymphonyAwsError("SQS.GetQueueUrl", name, error);
      }
      if (!url) throw new SymphonyAwsError("SQS.GetQueueUrl", name, new Error("no QueueUrl in the answer"));
    }
    let limit = maxMessageBytes;
    if (limit === undefined) {
      try {
        const output = await sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["MaximumMessageSize"] }),
        );
        limit = Number(output.Attributes?.["MaximumMessageSize"] ?? SQS_MAX_MESSAGE_BYTES);
      } catch (error) {
        throw new SymphonyAwsError("SQS.GetQueueAttributes", url, error);
      }
    }
    return { url, maxMessageBytes: limit, fifo: url.endsWith(".fifo") };
  }

  /**
   * Sends `messages` to `queue`; one result per message, in order. A request the service
   * refuses as a whole fails each of its messages with the reason; entries it fails on
   * its own side are sent again before they are reported.
   */
  async send(queue: ResolvedQueue, messages: readonly OutgoingMessage[]): Promise<SendResult[]> {
    const results: SendResult[] = new Array(messages.length);
    // Batch requests stay within one message's limit, which is within every batch limit
    // SQS has had (256 KiB, then 1 MiB): any message that fits the queue fits a request.
    const requests = planRequests(
      messages.map((message) => message.size),
      MAX_BATCH_ENTRIES,
      queue.maxMessageBytes,
    );
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        const request = requests[next++]!;
        await this.#sendRequest(queue, request, messages, results);
      }
    };
    await Promise.all(Array.from({ length: Math.min(REQUESTS_IN_FLIGHT, requests.length) }, worker));
    return results;
  }

  async #sendRequest(
    queue: ResolvedQueue,
    indexes: readonly number[],
    messages: readonly OutgoingMessage[],
    results: SendResult[],
  ): Promise<void> {
    let pending = [...indexes];
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      // Entry ids are positions in this request: unit ids may hold characters SQS refuses there.
      const entries = pending.map((index, position) => entry(`m${position}`, messages[index]!, queue.fifo));
      let output;
      try {
        output = await this.#options.sqs.send(new SendMessageBatchCommand({ QueueUrl: queue.url, Entries: entries }));
      } catch (error) {
        const failure = new SymphonyAwsError("SQS.SendMessageBatch", queue.url, error);
        const notSent = certainlyNotApplied(error);
        for (const index of pending) results[index] = { ok: false, reason: failure.message, error: failure, notSent };
        return;
      }
      const byEntry = new Map(pending.map((index, position) => [`m${position}`, index]));
      for (const sent of output.Successful ?? []) {
        const index = byEntry.get(sent.Id ?? "");
        if (index !== undefined) results[index] = { ok: true, messageId: sent.MessageId ?? "" };
      }
      const retry: number[] = [];
      for (const failed of output.Failed ?? []) {
        const index = byEntry.get(failed.Id ?? "");
        if (index === undefined) continue;
        if (!failed.SenderFault && attempt < ENTRY_RETRIES) {
          retry.push(index);
        } else {
          // A failed entry was not enqueued: SQS answers each entry, sent or not.
          const refusal = Object.assign(new Error(failed.Message ?? "no message"), { name: failed.Code ?? "UnknownCode" });
          const error = new SymphonyAwsError("SQS.SendMessageBatch", queue.url, refusal);
          results[index] = { ok: false, reason: `SQS refused the message (${refusal.name}: ${refusal.message})`, error, notSent: true };
        }
      }
      // An entry the answer does not mention is not known to be sent: reported, never assumed.
      for (const index of pending) {
        if (results[index] === undefined && !retry.includes(index)) {
          const reason = "SQS did not answer for the message";
          const error = new SymphonyAwsError("SQS.SendMessageBatch", queue.url, new Error(reason));
          results[index] = { ok: false, reason, error, notSent: false };
        }
      }
      pending = retry;
      if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS * (attempt + 1)));
    }
  }
}

function entry(id: string, message: OutgoingMessage, fifo: boolean): SendMessageBatchRequestEntry {
  const attributes = Object.fromEntries(
    message.attributes.map(([name, value]) => [name, { DataType: "String", StringValue: value }]),
  );
  return {
    Id: id,
    MessageBody: message.body,
    MessageAttributes: attributes,
    // On a FIFO queue, as the Rust producer does: the unit's messages keep their order in
    // its group, and the envelope id deduplicates a second send within five minutes.
    ...(fifo
      ? { MessageGroupId: fifoId(message.correlationId), MessageDeduplicationId: fifoId(message.envelopeId) }
      : {}),
  };
}

/**
 * A FIFO group or deduplication id SQS takes: the value itself when it is 1 to 128
 * characters, each a letter, a digit or punctuation (printable ASCII but space);
 * otherwise the SHA-256 of its UTF-8, in hex (64 characters), the same for the same value.
 */
export function fifoId(value: string): string {
  if (/^[\x21-\x7e]{1,128}$/.test(value)) return value;
  return createHash("sha256").update(value, "utf8").digest("hex");
}
