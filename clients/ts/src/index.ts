// The KooPhone gateway's TypeScript client: helpers around the generated messages and services ("./v1") for any
// Connect transport (gRPC from Node with @connectrpc/connect-node; the Connect protocol or gRPC-web from browsers
// with @connectrpc/connect-web, on the gateway's REST port): an API key interceptor that refuses plaintext except
// to loopback, request ids for writes, the error catalogue read from a ConnectError or a REST error body, and
// following a stream to its end. The same helpers as the Go client (package koophone) and the Python package
// (koophone).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createRegistry, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/koophone/v1/errors_pb.js";

export { Code, ConnectError };
export { ErrorReason };

/** The version of this package and of the contract it was generated from (the repository's VERSION). */
export const VERSION = "0.1.0";

/** The domain of the gateway's own errors: the reason is a koophone.v1.ErrorReason name. */
export const DOMAIN_GATEWAY = "koophone-gateway";
/** The domain of KooPhone's errors: the reason is its code verbatim, e.g. "KOOPHONE.API.4001". */
export const DOMAIN_KOOPHONE = "koophone.myhuaweicloud.com";

/** Whether a URL or host names this machine only (localhost, 127.0.0.0/8, ::1). */
export function isLoopback(urlOrHost: string): boolean {
  let host = urlOrHost;
  try {
    host = new URL(urlOrHost.includes("://") ? urlOrHost : `http://${urlOrHost}`).hostname;
  } catch {
    return false;
  }
  host = host.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export interface ApiKeyOptions {
  /** Let the key travel without TLS to a host that is not loopback (a test network, a sidecar). */
  allowInsecure?: boolean;
}

/**
 * An interceptor sending `authorization: Bearer <key>` on every call made to baseUrl (the transport's). It throws
 * here, before any call, when baseUrl is plain http to a host that is not loopback, unless allowInsecure says so:
 * a key must not cross a network in the clear.
 */
export function apiKeyInterceptor(key: string, baseUrl: string, opts: ApiKeyOptions = {}): Interceptor {
  if (key === "") throw new Error("koophone: empty API key");
  const https = baseUrl.toLowerCase().startsWith("https://");
  if (!https && !opts.allowInsecure && !isLoopback(baseUrl)) {
    throw new Error(`koophone: refusing to send the API key in plaintext to ${baseUrl}: use https, or set allowInsecure`);
  }
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}

/**
 * A new request id (a random UUID). Make one per write you intend, and send the same one again when you repeat
 * that write: the gateway then answers the first outcome instead of doing it twice (for 24 hours).
 */
export function newRequestId(): string {
  return globalThis.crypto.randomUUID();
}

/** Gives a write request a new requestId unless it has one, and returns it. */
export function withRequestId<T extends { requestId: string }>(req: T): string {
  if (req.requestId === "") req.requestId = newRequestId();
  return req.requestId;
}

/** One broken rule of the contract: the field path, the rule's id (e.g. "string.pattern") and a description. */
export interface Violation {
  field: string;
  reason: string;
  description: string;
}

/** A failed call read as the gateway's error catalogue (docs/errors.md) describes it. */
export interface GatewayError {
  code: Code;
  /** The gRPC code's name, e.g. "PERMISSION_DENIED". */
  codeName: string;
  message: string;
  /** From the google.rpc.ErrorInfo ("" when there is none). */
  reason: string;
  domain: string;
  /** "operation", "upstream_code", "upstream_message", "http_status", "request_id"… (absent when unknown). */
  metadata: Record<string, string>;
  /** The reason as a koophone.v1.ErrorReason when the gateway itself refused or failed the call; UNSPECIFIED for
   * KooPhone's errors, for none, and for a reason this package does not know yet (a newer gateway: go by the code). */
  gatewayReason: ErrorReason;
  /** A write may or may not have happened (OUTCOME_UNKNOWN, IDEMPOTENT_OUTCOME_UNKNOWN): check the state
   * (ListInstances, GetTask) before repeating it. */
  outcomeUnknown: boolean;
  /** google.rpc.RetryInfo's delay in milliseconds: wait this long before trying again (undefined: no RetryInfo). */
  retryDelayMs?: number;
  /** google.rpc.BadRequest's field violations. */
  violations: Violation[];
}

const detailRegistry = createRegistry(ErrorInfoSchema, RetryInfoSchema, BadRequestSchema);

/** The gRPC code's name as the Go and Python clients print it ("PERMISSION_DENIED"). */
export function codeName(code: Code): string {
  return (code as number) === 0 ? "OK" : Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function build(code: Code, message: string, details: readonly unknown[]): GatewayError {
  const e: GatewayError = {
    code, codeName: codeName(code), message, reason: "", domain: "", metadata: {},
    gatewayReason: ErrorReason.ERROR_REASON_UNSPECIFIED, outcomeUnknown: false, violations: [],
  };
  for (const d of details) {
    if (typeof d !== "object" || d === null || !("$typeName" in d)) continue;
    switch (d.$typeName) {
      case ErrorInfoSchema.typeName: {
        const info = d as ReturnType<typeof fromJson<typeof ErrorInfoSchema>>;
        e.reason = info.reason;
        e.domain = info.domain;
        e.metadata = { ...info.metadata };
        break;
      }
      case RetryInfoSchema.typeName: {
        const delay = (d as ReturnType<typeof fromJson<typeof RetryInfoSchema>>).retryDelay;
        if (delay) e.retryDelayMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
        break;
      }
      case BadRequestSchema.typeName:
        for (const v of (d as ReturnType<typeof fromJson<typeof BadRequestSchema>>).fieldViolations) {
          e.violations.push({ field: v.field, reason: v.reason, description: v.description });
        }
        break;
    }
  }
  if (e.domain === DOMAIN_GATEWAY) {
    // By the enum's value names in the contract, as they travel (the TypeScript names drop the type's prefix).
    e.gatewayReason = ErrorReasonSchema.values.find((v) => v.name === e.reason)?.number ?? ErrorReason.ERROR_REASON_UNSPECIFIED;
  }
  e.outcomeUnknown = e.gatewayReason === ErrorReason.OUTCOME_UNKNOWN ||
    e.gatewayReason === ErrorReason.IDEMPOTENT_OUTCOME_UNKNOWN;
  return e;
}

/**
 * Reads a failed Connect call (its google.rpc.Status details, from the grpc-status-details-bin trailer) as the
 * error catalogue; undefined when err is not a ConnectError.
 */
export function errorOf(err: unknown): GatewayError | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const details = [
    ...err.findDetails(ErrorInfoSchema),
    ...err.findDetails(RetryInfoSchema),
    ...err.findDetails(BadRequestSchema),
  ];
  return build(err.code, err.rawMessage, details);
}

/**
 * Reads an error of the REST mirror: the body `{"error": google.rpc.Status}` (or a stream's last line,
 * `{"error": …}`), with its details, as the error catalogue.
 */
export function restErrorOf(body: JsonValue): GatewayError {
  const status = (body as { error?: JsonValue } | null)?.error ?? body;
  const st = fromJson(StatusSchema, status, { registry: detailRegistry, ignoreUnknownFields: true });
  const details = st.details.map((any) => anyUnpack(any, detailRegistry)).filter((d) => d !== undefined);
  return build(st.code as Code, st.message, details);
}

/**
 * Follows a server stream to its end, calling fn with each message. It resolves when the stream ended with OK and
 * rejects with the stream's error (read it with errorOf) or fn's; fn's error stops following (abort the call's
 * signal then, to end the stream on the server too).
 */
export async function follow<M>(stream: AsyncIterable<M>, fn: (m: M) => void | Promise<void>): Promise<void> {
  for await (const m of stream) await fn(m);
}

/** Follows a stream to its end and returns its last message (undefined when it sent none). */
export async function last<M>(stream: AsyncIterable<M>): Promise<M | undefined> {
  let end: M | undefined;
  await follow(stream, (m) => {
    end = m;
  });
  return end;
}
