import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, buildConnector, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';

/**
 * Outbound HTTP for the `webhook` and `llm` handlers, checked by address as well as by name (README,
 * "Security"). An allow-list of names alone lets an allowed name whose DNS answer is loopback or private
 * (rebinding, internal DNS) reach anything inside. So every connection resolves its host itself, with a
 * checking `lookup`, and connects to exactly the address it checked (the lookup's answer is what the
 * socket dials: the address is pinned for the request, there is no second resolution to race). An address
 * literal in the URL is checked before the request, as `net.connect` does not look those up; the peer
 * address of every socket is checked again once connected (a runtime that ignored `lookup` is still held).
 *
 * This file lives in transport/ because it touches the network stack (`node:dns`, `node:net`, `node:os`,
 * undici), which handlers/ may not (STYLE.md, "Runtime at the rim").
 */

export interface GuardOptions {
  /** The allow-list (WEBHOOK_ALLOWED_HOSTS or LLM_ALLOWED_HOSTS), lower case. */
  allowedHosts: readonly string[];
  /** The variable that list comes from, for messages. */
  listName: string;
  /** The port this server listens on, refused on every local address; undefined before it listens. */
  ownPort?: () => number | undefined;
  /** How host names are resolved. @default node:dns lookup (the system resolver, as fetch uses) */
  resolve?: (hostname: string) => Promise<readonly LookupAddress[]>;
}

/** A request the guard refused before any byte went out: the same on every try, so not retryable. */
export class OutboundRefusedError extends Error {
  override name = 'OutboundRefusedError';
  readonly code = 'EOUTBOUNDREFUSED';
}

/** The refusal inside a fetch error (undici wraps connector errors as `cause`), or undefined. */
export function refusalOf(err: unknown): OutboundRefusedError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof OutboundRefusedError) return e;
  }
  return undefined;
}

// ---------- addresses ----------

type Special = 'loopback' | 'private' | 'link-local' | 'unspecified' | 'reserved';

const v4 = (s: string): number | undefined => {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
};

/** An IPv6 address as 8 16-bit words (an embedded dotted IPv4 tail included), or undefined. */
function v6(s: string): number[] | undefined {
  let text = s.toLowerCase().replace(/%.*$/, ''); // a zone (fe80::1%eth0) says nothing about the class
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const n = v4(tail[1]!);
    if (n === undefined) return undefined;
    text = `${text.slice(0, -tail[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words = (h: string) => (h === '' ? [] : h.split(':').map((w) => (/^[0-9a-f]{1,4}$/.test(w) ? parseInt(w, 16) : NaN)));
  const head = words(halves[0]!);
  const rest = halves.length === 2 ? words(halves[1]!) : [];
  const fill = 8 - head.length - rest.length;
  if (halves.length === 1 ? head.length !== 8 : fill < 1) return undefined;
  const all = [...head, ...Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest];
  return all.some(Number.isNaN) ? undefined : all;
}

const inV4 = (n: number, base: string, bits: number) => bits === 0 || n >>> (32 - bits) === v4(base)! >>> (32 - bits);

/** IPv4 ranges that are not the public internet (RFC 6890 and its updates), most specific reason first. */
const V4_SPECIAL: [string, number, Special][] = [
  ['127.0.0.0', 8, 'loopback'],
  ['0.0.0.0', 8, 'unspecified'], // "this network": connecting to 0.0.0.0 reaches this machine
  ['10.0.0.0', 8, 'private'],
  ['172.16.0.0', 12, 'private'],
  ['192.168.0.0', 16, 'private'],
  ['100.64.0.0', 10, 'private'], // carrier-grade NAT, shared address space
  ['169.254.0.0', 16, 'link-local'], // cloud metadata (169.254.169.254) lives here
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'reserved'], // multicast
  ['240.0.0.0', 4, 'reserved'], // reserved, and the broadcast address
];

function classifyV4(n: number): Special | undefined {
  return V4_SPECIAL.find(([base, bits]) => inV4(n, base, bits))?.[2];
}

function classifyV6(w: number[]): Special | undefined {
  const [a, b, c, d, e, f, g, h] = w as [number, number, number, number, number, number, number, number];
  const zeroHead = a === 0 && b === 0 && c === 0 && d === 0 && e === 0;
  if (zeroHead && f === 0 && g === 0) return h === 1 ? 'loopback' : h === 0 ? 'unspecified' : 'reserved';
  // IPv4 inside IPv6 reaches that IPv4 address: mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16).
  if (zeroHead && f === 0xffff) return classifyV4(((g << 16) | h) >>> 0);
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return classifyV4(((g << 16) | h) >>> 0);
  if (a === 0x2002) return classifyV4(((b << 16) | c) >>> 0);
  if (zeroHead && f === 0) return 'reserved'; // IPv4-compatible (::a.b.c.d), deprecated
  if ((a & 0xfe00) === 0xfc00) return 'private'; // unique local fc00::/7
  if ((a & 0xffc0) === 0xfe80) return 'link-local';
  if ((a & 0xffc0) === 0xfec0) return 'private'; // site-local, deprecated but still routed inside some networks
  if ((a & 0xff00) === 0xff00) return 'reserved'; // multicast
  if (a === 0x2001 && b === 0x0db8) return 'reserved'; // documentation
  return undefined;
}

/** An address in one canonical text, so `::FFFF:127.0.0.1`, `0:0::1` and `127.0.0.1` compare as they route. */
export function canonicalAddress(address: string): string | undefined {
  const bare = address.replace(/^\[|\]$/g, '');
  const n = v4(bare);
  if (n !== undefined) return bare.split('.').map(Number).join('.');
  const w = v6(bare);
  if (!w) return undefined;
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) return `${w[6]! >>> 8}.${w[6]! & 255}.${w[7]! >>> 8}.${w[7]! & 255}`;
  return w.map((x) => x.toString(16)).join(':');
}

/** Why an address is not on the public internet (`loopback`, `private` …), or undefined when it is. */
export function specialAddress(address: string): Special | undefined {
  const bare = address.replace(/^\[|\]$/g, '');
  const n = v4(bare);
  if (n !== undefined) return classifyV4(n);
  const w = v6(bare);
  return w ? classifyV6(w) : 'reserved'; // not an address at all: never trusted
}

/** This machine's own addresses (every interface), canonical. */
function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      const c = canonicalAddress(i.address);
      if (c) out.add(c);
    }
  }
  return out;
}

export interface AddressPolicy {
  /** The refusal for connecting to `address` on `port` for the URL host `hostname`, or undefined to allow it. */
  problem(hostname: string, address: string, port: number): string | undefined;
}

/**
 * The rule: a public address of an allowed name is allowed. A loopback, private, link-local, unspecified or
 * reserved address is allowed only when the allow-list names that very address (`127.0.0.1`, `::1`,
 * `10.0.0.7`), or, for loopback answers of the name `localhost`, when the list names `localhost`: RFC 6761
 * reserves that name for loopback and resolvers answer it from the hosts file, never from DNS, so naming it
 * is naming loopback. Whatever the list says, this server's own port on this machine is refused: a webhook
 * must not call the scheduler's own API with the scheduler's network position.
 */
export function addressPolicy(options: Pick<GuardOptions, 'allowedHosts' | 'listName' | 'ownPort'>): AddressPolicy {
  const literal = new Set(options.allowedHosts.map(canonicalAddress).filter((a): a is string => a !== undefined));
  const localhostListed = options.allowedHosts.includes('localhost');
  return {
    problem(hostname, address, port) {
      const canonical = canonicalAddress(address);
      const kind = specialAddress(address);
      const own = options.ownPort?.();
      if (own !== undefined && port === own && canonical !== undefined && (kind === 'loopback' || kind === 'unspecified' || ownAddresses().has(canonical))) {
        return `port ${port} on this machine is this scheduler's own`;
      }
      if (kind === undefined) return undefined;
      if (canonical !== undefined && literal.has(canonical)) return undefined;
      if (kind === 'loopback' && localhostListed && hostname.toLowerCase().replace(/\.$/, '') === 'localhost') return undefined;
      // The address a name resolved to is not named: a run's error must not map internal DNS.
      return isIP(hostname.replace(/^\[|\]$/g, ''))
        ? `address ${hostname} is ${kind === 'unspecified' ? 'the' : 'a'} ${kind} address, which ${options.listName} does not list`
        : `"${hostname}" resolves to a ${kind} address, which ${options.listName} does not list (loopback, private and link-local addresses must be listed as IPs)`;
    },
  };
}

// ---------- the fetch ----------

const defaultResolve = (hostname: string): Promise<readonly LookupAddress[]> =>
  new Promise((resolve, reject) => {
    const opts: LookupAllOptions = { all: true, order: 'verbatim' };
    dnsLookup(hostname, opts, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

const defaultPort = (url: URL) => (url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80);

export interface GuardedResponse extends AsyncDisposable {
  response: Response;
}

export interface GuardedFetch {
  /**
   * `fetch(url, init)` through a dispatcher of its own that checks every address it connects to; disposing
   * the answer closes that dispatcher and its socket. Rejects with an OutboundRefusedError (as the `cause`
   * of fetch's TypeError) when the policy refuses, before any byte is sent.
   */
  (url: string, init: RequestInit): Promise<GuardedResponse>;
}

export function createGuardedFetch(options: GuardOptions): GuardedFetch {
  const policy = addressPolicy(options);
  const resolve = options.resolve ?? defaultResolve;
  return async (url, init) => {
    const target = new URL(url);
    const hostname = target.hostname.replace(/^\[|\]$/g, '');
    const port = defaultPort(target);
    if (isIP(hostname)) {
      const problem = policy.problem(hostname, hostname, port);
      if (problem) throw new TypeError('fetch failed', { cause: new OutboundRefusedError(problem) });
    }
    /** Answers every address of the name, or refuses the whole answer when one of them is refused. */
    const lookup: LookupFunction = (name, lookupOptions, callback) => {
      resolve(name).then(
        (addresses) => {
          const family = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
          const usable = addresses.filter((a) => family === 0 || a.family === family);
          if (usable.length === 0) return callback(Object.assign(new Error(`no address for ${name}`), { code: 'ENOTFOUND' }), '', 4);
          // One refused answer refuses the name: a rebinding answer mixes a public and an internal address.
          for (const a of usable) {
            const problem = policy.problem(name, a.address, port);
            if (problem) return callback(new OutboundRefusedError(problem) as NodeJS.ErrnoException, '', 4);
          }
          if (lookupOptions.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, [...usable]);
          else callback(null, usable[0]!.address, usable[0]!.family);
        },
        (err: unknown) => callback(err as NodeJS.ErrnoException, '', 4),
      );
    };
    const base = buildConnector({ lookup });
    const agent = new Agent({
      connect(connectOptions, callback) {
        base(connectOptions, (err, socket) => {
          if (err || !socket) return callback(err ?? new Error('no socket'), null);
          // Checked again on the socket itself: what it is connected to is what was allowed.
          const problem = socket.remoteAddress === undefined
            ? 'the connection has no peer address'
            : policy.problem(hostname, socket.remoteAddress, socket.remotePort ?? port);
          if (problem) {
            socket.destroy();
            return callback(new OutboundRefusedError(problem), null);
          }
          callback(null, socket);
        });
      },
      pipelining: 0,
    });
    const dispose = () => agent.destroy().catch(() => {});
    try {
      const response = (await undiciFetch(url, { ...(init as UndiciRequestInit), dispatcher: agent })) as unknown as Response;
      return { response, [Symbol.asyncDispose]: dispose };
    } catch (err) {
      await dispose();
      throw err;
    }
  };
}

/** The port a listening server is on, for `ownPort`; undefined before it listens (or on a pipe). */
export function listeningPort(address: () => string | { port: number } | null | undefined): () => number | undefined {
  return () => {
    const a = address();
    return a !== null && typeof a === 'object' ? a.port : undefined;
  };
}
