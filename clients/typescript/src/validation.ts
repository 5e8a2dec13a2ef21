// Checks a message before anything is written or sent, with the rules the Rust worker
// applies on receipt (`EmailMessage::validate` and friends), so what the worker would
// refuse for good is refused here, naming the field. Which fields exist, and which are
// required, comes from the generated contract, so it follows the schema.

import { isIP } from "node:net";
import { domainToASCII } from "node:url";

import { SymphonyValidationError, type FieldProblem } from "./errors.js";
import {
  SCHEMA_FIELDS,
  type CampaignProcessingMessage,
  type EmailMessage,
  type SmsDripMessage,
} from "./generated/contract.js";

/** The worker refuses a larger HTML body (`MAX_HTML_BYTES`, 900 KiB of UTF-8). */
export const MAX_HTML_BYTES = 900 * 1024;
/** RFC 5322 caps a header line at 998 characters (`MAX_SUBJECT_CHARS`). */
export const MAX_SUBJECT_CHARS = 998;

type SchemaObject = keyof typeof SCHEMA_FIELDS;

/** Collects the problems of one message; `done` raises them all at once. */
class Problems {
  readonly list: FieldProblem[] = [];

  add(field: string, reason: string): void {
    this.list.push({ field, reason });
  }

  done(what: string): void {
    if (this.list.length > 0) throw new SymphonyValidationError(what, this.list);
  }
}

/**
 * The fields of `input` as the schema's object `name` allows them: every required one
 * present, no unknown one. An optional field given as `null` or `undefined` is absent.
 */
function fieldsOf(
  name: SchemaObject,
  input: unknown,
  problems: Problems,
): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    problems.add("(message)", `must be an object with the fields of ${name}`);
    return fields;
  }
  const { required, optional, closed } = SCHEMA_FIELDS[name];
  const known = new Set<string>([...required, ...optional]);
  const record = input as Record<string, unknown>;
  for (const field of required) {
    if (record[field] === undefined || record[field] === null) problems.add(field, "is missing");
    else fields.set(field, record[field]);
  }
  for (const field of optional) {
    if (record[field] !== undefined && record[field] !== null) fields.set(field, record[field]);
  }
  if (closed) {
    for (const field of Object.keys(record)) {
      if (!known.has(field)) problems.add(field, `is not a field of ${name}`);
    }
  }
  return fields;
}

/** A lone surrogate: in a `u` pattern a pair is one code point, so only a lone half matches. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/**
 * A character SQS refuses in a message (its body and its attribute values), which takes
 * only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
 */
const SQS_REFUSED = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** `U+001B`. */
function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Why `value` cannot travel in a message, or `undefined`: a string that is not well-formed
 * UTF-16 has no UTF-8 form (Rust's `String` cannot hold it), and SQS refuses some
 * characters outright (the id fields go into message attributes as they are).
 */
export function characterProblem(value: string): string | undefined {
  const lone = LONE_SURROGATE.exec(value);
  if (lone) return `is not well-formed UTF-16 (a lone surrogate, ${codePoint(lone[0])}, at index ${lone.index})`;
  const refused = SQS_REFUSED.exec(value);
  if (refused) return `contains ${codePoint(refused[0])} at index ${refused.index}, a character SQS refuses in a message`;
  return undefined;
}

/** A string field; problems for any other type or for characters no message may carry. `undefined` when absent or wrong. */
function text(fields: Map<string, unknown>, field: string, problems: Problems): string | undefined {
  if (!fields.has(field)) return undefined;
  const value = fields.get(field);
  if (typeof value !== "string") {
    problems.add(field, "must be a string");
    return undefined;
  }
  const problem = characterProblem(value);
  if (problem !== undefined) {
    problems.add(field, problem);
    return undefined;
  }
  return value;
}

/** Unicode White_Space only, which Rust's `str::trim` removes (JavaScript's `trim` differs: it removes U+FEFF, keeps U+0085). */
const ONLY_WHITE_SPACE = /^\p{White_Space}*$/u;

/** A string field that must hold more than white space (the worker trims, then checks). */
function id(fields: Map<string, unknown>, field: string, problems: Problems): string | undefined {
  const value = text(fields, field, problems);
  if (value !== undefined && ONLY_WHITE_SPACE.test(value)) {
    problems.add(field, "is empty");
    return undefined;
  }
  return value;
}

/** DynamoDB's limit on a partition key value: 2048 bytes. */
export const MAX_KEY_BYTES = 2048;

function hasLineBreak(value: string): boolean {
  return value.includes("\r") || value.includes("\n");
}

/** Validates an `EmailMessage`; returns it with its fields in the schema's order. */
export function validateEmailMessage(input: unknown): EmailMessage {
  const problems = new Problems();
  const fields = fieldsOf("EmailMessage", input, problems);
  const emailId = id(fields, "emailId", problems);
  if (emailId !== undefined && Buffer.byteLength(emailId, "utf8") > MAX_KEY_BYTES) {
    problems.add("emailId", `is ${Buffer.byteLength(emailId, "utf8")} bytes, over the ${MAX_KEY_BYTES} of a DynamoDB key`);
  }
  const userId = id(fields, "userId", problems);
  const mailboxId = id(fields, "mailboxId", problems);
  const toEmail = text(fields, "toEmail", problems);
  if (toEmail !== undefined) {
    if (toEmail === "") problems.add("toEmail", "is empty");
    else if (!isEmailAddress(toEmail)) problems.add("toEmail", "is not a valid email address");
  }
  const subject = text(fields, "subject", problems);
  if (subject !== undefined) {
    const characters = [...subject].length;
    if (characters > MAX_SUBJECT_CHARS) {
      problems.add("subject", `is ${characters} characters, over ${MAX_SUBJECT_CHARS}`);
    }
    if (hasLineBreak(subject)) problems.add("subject", "contains a line break");
  }
  const html = text(fields, "html", problems);
  if (html !== undefined) {
    const bytes = Buffer.byteLength(html, "utf8");
    if (bytes > MAX_HTML_BYTES) problems.add("html", `is ${bytes} bytes, over ${MAX_HTML_BYTES}`);
  }
  const fromName = text(fields, "fromName", problems);
  if (fromName !== undefined && hasLineBreak(fromName)) {
    problems.add("fromName", "contains a line break");
  }
  const fromEmail = text(fields, "fromEmail", problems);
  if (fromEmail !== undefined && !isEmailAddress(fromEmail)) {
    problems.add("fromEmail", "is not a valid email address");
  }
  problems.done("EmailMessage");
  // Every required value is set when no problem was found.
  const message: EmailMessage = {
    emailId: emailId!,
    userId: userId!,
    mailboxId: mailboxId!,
    toEmail: toEmail!,
    subject: subject!,
    html: html!,
  };
  if (fromName !== undefined) message.fromName = fromName;
  if (fromEmail !== undefined) message.fromEmail = fromEmail;
  return message;
}

/** Validates a `CampaignProcessingMessage`. */
export function validateCampaignProcessingMessage(input: unknown): CampaignProcessingMessage {
  const problems = new Problems();
  const fields = fieldsOf("CampaignProcessingMessage", input, problems);
  const campaignId = id(fields, "campaignId", problems);
  const userId = id(fields, "userId", problems);
  const action = fields.get("action");
  if (fields.has("action") && action !== "process") problems.add("action", 'must be "process"');
  problems.done("CampaignProcessingMessage");
  return { campaignId: campaignId!, userId: userId!, action: "process" };
}

/** E.164: a plus, a digit other than zero, then one to fourteen more digits. */
export function isE164(phone: string): boolean {
  return /^\+[1-9][0-9]{1,14}$/.test(phone);
}

/** Validates an `SmsDripMessage`. */
export function validateSmsDripMessage(input: unknown): SmsDripMessage {
  const problems = new Problems();
  const fields = fieldsOf("SmsDripMessage", input, problems);
  const enrollmentId = id(fields, "enrollmentId", problems);
  const sequenceId = id(fields, "sequenceId", problems);
  const userId = id(fields, "userId", problems);
  const toPhone = text(fields, "toPhone", problems);
  if (toPhone !== undefined && !isE164(toPhone)) {
    problems.add("toPhone", "is not an E.164 number (+ and 2 to 15 digits)");
  }
  const step = fields.get("step");
  if (fields.has("step") && !(Number.isSafeInteger(step) && (step as number) >= 0)) {
    problems.add("step", "must be a whole number, 0 or more");
  }
  problems.done("SmsDripMessage");
  return {
    enrollmentId: enrollmentId!,
    sequenceId: sequenceId!,
    userId: userId!,
    toPhone: toPhone!,
    step: step as number,
  };
}

// ---------------------------------------------------------------- addresses
// The worker parses addresses with lettre, whose rules are RFC 5322's: a local part that
// is a dot-atom or a quoted string (at most 64 bytes), an "@", and a domain of labels
// (each at most 63 bytes, starting and ending with a letter or digit, at most 254 bytes
// in all), a domain literal in brackets, or an IP address. A non-ASCII domain that does
// not pass as it is is tried again in its IDNA (punycode) form.

const ATEXT_SPECIALS = "!#$%&'*+-/=?^_`{|}~";

function isAlphanumeric(char: string): boolean {
  return /^[\p{Alphabetic}\p{N}]$/u.test(char);
}

function isAtext(char: string): boolean {
  return isAlphanumeric(char) || ATEXT_SPECIALS.includes(char) || char.codePointAt(0)! > 0x7f;
}

function isAtom(part: string): boolean {
  return part !== "" && [...part].every(isAtext);
}

function inRange(char: string, low: number, high: number): boolean {
  const code = char.codePointAt(0)!;
  return code >= low && code <= high;
}

/** Quoted-string content: text, spaces and tabs, and backslash pairs of visible characters. */
function isQuotedContent(content: string): boolean {
  const chars = [...content];
  for (let index = 0; index < chars.length; index += 1) {
    const char = chars[index]!;
    if (char === "\\") {
      index += 1;
      const escaped = chars[index];
      if (escaped === undefined || !inRange(escaped, 0x21, 0x7e)) return false;
    } else if (
      !(char === " " || char === "\t" || char === "\x21" || inRange(char, 0x23, 0x5b) ||
        inRange(char, 0x5d, 0x7e) || inRange(char, 0x80, 0x10ffff))
    ) {
      return false;
    }
  }
  return true;
}

function isLocalPart(local: string): boolean {
  if (local === "" || Buffer.byteLength(local, "utf8") > 64) return false;
  if (local.startsWith('"') && local.endsWith('"')) {
    return local.length > 2 && isQuotedContent(local.slice(1, -1));
  }
  return local.split(".").every(isAtom);
}

function isDomainText(domain: string): boolean {
  if (domain === "" || Buffer.byteLength(domain, "utf8") > 254) return false;
  if (domain.startsWith("[") && domain.endsWith("]")) {
    // A domain literal: printable ASCII but brackets and backslash, or non-ASCII.
    return [...domain.slice(1, -1)].every(
      (char) => inRange(char, 0x21, 0x5a) || inRange(char, 0x5e, 0x7e) || inRange(char, 0x80, 0x10ffff),
    );
  }
  return domain.split(".").every((label) => {
    const chars = [...label];
    return (
      chars.length > 0 &&
      Buffer.byteLength(label, "utf8") <= 63 &&
      isAlphanumeric(chars[0]!) &&
      isAlphanumeric(chars[chars.length - 1]!) &&
      isAtom(label)
    );
  });
}

function isDomainOrIp(domain: string): boolean {
  if (isDomainText(domain)) return true;
  const bare = domain.startsWith("[") && domain.endsWith("]") ? domain.slice(1, -1) : domain;
  return !bare.includes("%") && isIP(bare) !== 0;
}

function isDomain(domain: string): boolean {
  if (isDomainOrIp(domain)) return true;
  const ascii = domainToASCII(domain);
  return ascii !== "" && isDomainOrIp(ascii);
}

/** Whether the worker's address parser (lettre) would accept `address`. */
export function isEmailAddress(address: string): boolean {
  const at = address.lastIndexOf("@");
  if (at < 0) return false;
  return isLocalPart(address.slice(0, at)) && isDomain(address.slice(at + 1));
}
