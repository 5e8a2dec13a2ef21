#!/usr/bin/env node
// Generates src/generated/contract.ts from the JSON Schema of the envelope
// (docs/schemas/envelope.schema.json), so the TypeScript types cannot drift from the
// contract the Rust side enforces. Deterministic: the output depends on the schema only,
// in its own order. `test/contract.test.mjs` regenerates in memory and compares.
//
// Usage: node scripts/generate-contract.mjs [--check]

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const PACKAGE_ROOT = join(here, "..");
export const SCHEMA_PATH = join(PACKAGE_ROOT, "..", "..", "docs", "schemas", "envelope.schema.json");
export const OUTPUT_PATH = join(PACKAGE_ROOT, "src", "generated", "contract.ts");

const HEADER = `// Generated from docs/schemas/envelope.schema.json by scripts/generate-contract.mjs.
// Do not edit: change the schema, then run \`npm run generate\` (a test fails while this
// file differs from what the schema generates).
`;

/** The TypeScript text of a schema's type, as used in a property or alias. */
function typeOf(schema, context) {
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return types
    .map((type) => {
      switch (type) {
        case "string":
          return "string";
        case "integer":
        case "number":
          return "number";
        case "boolean":
          return "boolean";
        case "null":
          return "null";
        case "array":
          return `Array<${schema.items ? typeOf(schema.items, context) : "unknown"}>`;
        case "object":
          // Objects with properties are named definitions; a bare one is open.
          return "Record<string, unknown>";
        default:
          throw new Error(`${context}: unsupported schema type ${JSON.stringify(type)}`);
      }
    })
    .join(" | ");
}

function refName(ref) {
  const match = /^#\/\$defs\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(ref);
  if (!match) throw new Error(`unsupported $ref ${ref}`);
  return match[1];
}

function propertyKey(name) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/** A JSDoc block of the description and the constraints a type cannot say. */
function doc(schema, indent) {
  const lines = [];
  if (schema.description) lines.push(...schema.description.split("\n"));
  const constraints = [];
  for (const keyword of ["minLength", "maxLength", "minimum", "maximum", "pattern", "format"]) {
    if (schema[keyword] !== undefined) constraints.push(`${keyword} ${JSON.stringify(schema[keyword])}`);
  }
  if (constraints.length > 0) lines.push(`Schema: ${constraints.join(", ")}.`);
  if (schema.default !== undefined) lines.push(`@default ${JSON.stringify(schema.default)}`);
  if (lines.length === 0) return "";
  const safe = lines.map((line) => line.replaceAll("*/", "*\\/"));
  if (safe.length === 1) return `${indent}/** ${safe[0]} */\n`;
  return `${indent}/**\n${safe.map((line) => `${indent} * ${line}`.trimEnd()).join("\n")}\n${indent} */\n`;
}

function objectInterface(name, schema, overrides = {}, generics = "") {
  const required = new Set(schema.required ?? []);
  let text = doc(schema, "");
  text += `export interface ${name}${generics} {\n`;
  for (const [property, propertySchema] of Object.entries(schema.properties ?? {})) {
    const optional = required.has(property) ? "" : "?";
    const type = overrides[property] ?? typeOf(propertySchema, `${name}.${property}`);
    text += doc(propertySchema, "  ");
    text += `  ${propertyKey(property)}${optional}: ${type};\n`;
  }
  if (schema.additionalProperties !== false) {
    text += "  /** The schema allows further fields here. */\n  [field: string]: unknown;\n";
  }
  return `${text}}\n`;
}

/**
 * The `allOf: [{ if: { properties: { <disc>: { const } } }, then: { properties: { <field>: { $ref } } } }]`
 * of the envelope: which payload each message type carries.
 */
function discriminator(schema) {
  const cases = [];
  let discriminant;
  let field;
  for (const branch of schema.allOf ?? []) {
    const [[ifName, ifSchema]] = Object.entries(branch.if?.properties ?? {});
    const [[thenName, thenSchema]] = Object.entries(branch.then?.properties ?? {});
    if (ifSchema?.const === undefined || !thenSchema?.$ref) {
      throw new Error("every allOf branch must map a const discriminant to a $ref");
    }
    if ((discriminant ?? ifName) !== ifName || (field ?? thenName) !== thenName) {
      throw new Error("allOf branches must share their discriminant and field");
    }
    discriminant = ifName;
    field = thenName;
    cases.push([ifSchema.const, refName(thenSchema.$ref)]);
  }
  return { discriminant, field, cases };
}

/** The whole generated module for `schema`. */
export function generateContract(schema) {
  const { discriminant, field, cases } = discriminator(schema);
  const messageTypes = schema.properties[discriminant].enum;
  const mapped = cases.map(([type]) => type);
  if (JSON.stringify(mapped) !== JSON.stringify(messageTypes)) {
    throw new Error(`the ${discriminant} enum and the allOf branches list different message types`);
  }
  const parts = [HEADER];

  parts.push(
    doc(schema.properties[discriminant], "") +
      `export type MessageType = ${typeOf(schema.properties[discriminant], discriminant)};\n`,
  );
  parts.push(
    `/** Every message type, in the schema's order. */\n` +
      `export const MESSAGE_TYPES = ${JSON.stringify(messageTypes)} as const;\n`,
  );
  parts.push(
    `/** The ${field} each message type carries. */\nexport interface PayloadByType {\n` +
      cases.map(([type, ref]) => `  ${propertyKey(type)}: ${ref};\n`).join("") +
      "}\n",
  );
  for (const [name, definition] of Object.entries(schema.$defs)) {
    if (definition.type === "object" && definition.properties) {
      parts.push(objectInterface(name, definition));
    } else {
      parts.push(doc(definition, "") + `export type ${name} = ${typeOf(definition, name)};\n`);
    }
  }
  parts.push(
    objectInterface(
      "EnvelopeOf",
      schema,
      { [discriminant]: "T", [field]: `PayloadByType[T]` },
      "<T extends MessageType>",
    ),
  );
  parts.push(
    `/** An envelope of any message type, discriminated by \`${discriminant}\`. */\n` +
      `export type Envelope = { [T in MessageType]: EnvelopeOf<T> }[MessageType];\n`,
  );

  // Field lists in schema order, for validation that follows the schema (required,
  // optional, and whether other fields are refused).
  const fields = {};
  for (const [name, definition] of Object.entries(schema.$defs)) {
    if (definition.type !== "object" || !definition.properties) continue;
    const required = definition.required ?? [];
    fields[name] = {
      required,
      optional: Object.keys(definition.properties).filter((property) => !required.includes(property)),
      closed: definition.additionalProperties === false,
    };
  }
  parts.push(
    `/** The fields of each object of the schema, in its order. */\n` +
      `export const SCHEMA_FIELDS = ${JSON.stringify(fields, null, 2)} as const;\n`,
  );
  return parts.join("\n");
}

export function readSchema(path = SCHEMA_PATH) {
  return JSON.parse(readFileSync(path, "utf8"));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const generated = generateContract(readSchema());
  if (process.argv.includes("--check")) {
    const current = readFileSync(OUTPUT_PATH, "utf8");
    if (current !== generated) {
      console.error(`${OUTPUT_PATH} is stale: run npm run generate`);
      process.exit(1);
    }
  } else {
    writeFileSync(OUTPUT_PATH, generated);
    console.error(`wrote ${OUTPUT_PATH}`);
  }
}
