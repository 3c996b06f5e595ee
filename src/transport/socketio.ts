import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { systemClock, type Clock } from '../core/clock.ts';
import { toDomainError } from '../core/errors.ts';
import { MAX_BODY_BYTES, MAX_SUBSCRIPTIONS_PER_SOCKET, SOCKET_AUTH_GRACE_MS } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { idSchema } from '../schemas/common.ts';
import type { Auth, Principal } from '../services/auth.ts';
import type { Services } from '../services/services.ts';
import { socketIoCors } from './cors.ts';
import { atTime, tokenDeadline } from './expiry.ts';

/**
 * Socket.IO on the shared port, as the README's "Socket.IO" section describes it: `auth.token` at
 * the handshake, the subscribe/unsubscribe events with `{ success, error? }` acks, and the event names
 * `agent:*` and `scheduler:status`. Socket.IO is used (not raw `ws`) because clients are written
 * against its protocol: handshake auth, acks, rooms, reconnection and connection-state recovery come
 * with it. Who may watch what, and the figures sent at subscribe time, come from the events service.
 */
export interface SocketIoDeps {
  auth: Auth;
  services: Services;
  logger: Logger;
  /** An Engine.IO session that has not joined a namespace with a valid token by then is closed. @default SOCKET_AUTH_GRACE_MS (5000) */
  authGraceMs?: number;
  /** Agent rooms one socket may be in at once. @default MAX_SUBSCRIPTIONS_PER_SOCKET (100) */
  maxSubscriptions?: number;
  /** What the token's `exp` is read against: a socket is disconnected when its token expires. @default systemClock */
  clock?: Clock;
}

/** What an expired socket is told before it is disconnected: it may connect again with a fresh token. */
export const TOKEN_EXPIRED = Object.freeze({ code: 'UNAUTHORIZED', message: 'Token expired' });

type Ack = (answer: { success: boolean; error?: string }) => void;

/** The rooms of every agent start so (MAX_SUBSCRIPTIONS_PER_SOCKET counts them). */
const AGENT_ROOM = 'agent:';
const SCHEDULER_ROOM = 'scheduler';

export function attachSocketIo(httpServer: HttpServer, { auth, services, logger, authGraceMs = SOCKET_AUTH_GRACE_MS, maxSubscriptions = MAX_SUBSCRIPTIONS_PER_SOCKET, clock = systemClock }: SocketIoDeps) {
  const { events } = services;
  const io = new Server(httpServer, {
    // Leave other upgrades (tRPC's /trpc) alone: without this Socket.IO cuts them after a second.
    destroyUpgrade: false,
    maxHttpBufferSize: MAX_BODY_BYTES,
    // An Engine.IO session that never connects to a namespace (no token, or a refused one) is closed after this,
    // instead of being kept alive by pings for as long as the client likes.
    connectTimeout: authGraceMs,
    // The port's one CORS policy (cors.ts): another origin's page gets no session, polling or WebSocket.
    cors: socketIoCors(httpServer),
    // Recovered sessions still go through the auth middleware, so a revoked or expired token is caught.
    connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000, skipMiddlewares: false },
  });

  io.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    auth.verify(typeof token === 'string' ? token : null).then(
      (principal) => {
        socket.data.principal = principal;
        socket.data.deadline = tokenDeadline(token as string);
        next();
      },
      () => next(new Error('Unauthorized')),
    );
  });

  /** Status events broadcast so far: a snapshot read while one went out is not sent after it. */
  let statusBroadcasts = 0;
  /** `agent:deleted` markers handled so far: a subscription whose check straddled one checks again. */
  let deletions = 0;
  /**
   * Deletes handled per agent id. An id's room is named with it (`agent:R`, then `agent:R#1` after a delete …), so
   * the next agent under the id broadcasts to a new room: a session restored by connection-state recovery gets its old
   * rooms and their missed packets back (up to the `agent:deleted`), never the next owner's events. One number per
   * deleted id, for the process's life.
   */
  const generations = new Map<string, number>();
  const agentRoom = (agentId: string) => {
    const g = generations.get(agentId);
    return g === undefined ? `${AGENT_ROOM}${agentId}` : `${AGENT_ROOM}${agentId}#${g}`;
  };
  /** Any room of the agent, of its present or an earlier generation. */
  const isRoomOf = (room: string, agentId: string) => room === `${AGENT_ROOM}${agentId}` || room.startsWith(`${AGENT_ROOM}${agentId}#`);
  const safeAck = (ack: unknown): Ack => (typeof ack === 'function' ? (ack as Ack) : () => {});

  io.on('connection', (socket: Socket) => {
    const deadline = socket.data.deadline as number | null;
    const expired = () => deadline !== null && clock.now() >= deadline;
    /** Tells the client why (it may reconnect with a fresh token), then disconnects it. */
    const endExpired = () => {
      socket.emit('unauthorized', TOKEN_EXPIRED);
      socket.disconnect(true);
    };
    const cancelExpiry = deadline === null ? () => {} : atTime(clock, deadline, endExpired);
    socket.once('disconnect', cancelExpiry);
    /** The caller, checked on every handler: an expired one is disconnected instead of served. */
    const principal = (): Principal => {
      if (expired()) {
        endExpired();
        throw new Error(TOKEN_EXPIRED.message);
      }
      return socket.data.principal as Principal;
    };

    socket.on('subscribe-agent-updates', async (agentId: unknown, ack?: unknown) => {
      const reply = safeAck(ack);
      if (expired()) return endExpired();
      try {
        const id = idSchema.safeParse(agentId);
        if (!id.success) return reply({ success: false, error: 'agentId: expected 1 to 64 characters of A-Z, a-z, 0-9, _ or -' });
        // Another owner's agent answers as a missing one. A delete handled during the check may have been this
        // agent's, and its id taken again by someone else: check again, so the socket never joins a new owner's room.
        for (let seen = -1; seen !== deletions;) {
          seen = deletions;
          await events.authorize(principal(), id.data);
        }
        const room = agentRoom(id.data);
        let agentRooms = 0;
        for (const r of socket.rooms) if (r.startsWith(AGENT_ROOM)) agentRooms++;
        if (!socket.rooms.has(room) && agentRooms >= maxSubscriptions) {
          return reply({ success: false, error: `Too many subscriptions: at most ${maxSubscriptions} agents per socket (MAX_SUBSCRIPTIONS_PER_SOCKET)` });
        }
        for (const r of [...socket.rooms]) if (r !== room && isRoomOf(r, id.data)) await socket.leave(r); // an earlier generation's
        await socket.join(room);
        reply({ success: true });
      } catch (err) {
        reply({ success: false, error: toDomainError(err).message });
      }
    });
    socket.on('unsubscribe-agent-updates', async (agentId: unknown, ack?: unknown) => {
      if (expired()) return endExpired();
      if (typeof agentId === 'string') for (const r of [...socket.rooms]) if (isRoomOf(r, agentId)) await socket.leave(r);
      safeAck(ack)({ success: true });
    });
    socket.on('subscribe-scheduler-updates', async (ack?: unknown) => {
      if (expired()) return endExpired();
      await socket.join(SCHEDULER_ROOM);
      safeAck(ack)({ success: true });
      // On a shared store the figures are read from the database (a few ms): a status event broadcast to the
      // room meanwhile is newer news for this socket, and the snapshot is not sent after it.
      const broadcastsBefore = statusBroadcasts;
      await events.snapshot().then(
        (now) => void (statusBroadcasts === broadcastsBefore && socket.emit('scheduler:status', now.data)),
        (err: unknown) => logger.warn('could not read the status figures', { error: String(err) }),
      );
    });
    socket.on('unsubscribe-scheduler-updates', async (ack?: unknown) => {
      if (expired()) return endExpired();
      await socket.leave(SCHEDULER_ROOM);
      safeAck(ack)({ success: true });
    });
  });

  // One listener for all sockets: a room broadcast encodes each event once for every subscriber.
  const off = events.live((event) => {
    if (event.type === 'scheduler:status') {
      statusBroadcasts++;
      io.to(SCHEDULER_ROOM).emit('scheduler:status', event.data);
    } else if (event.type === 'agent:deleted') {
      // Every instance reads the marker from the events table: each tells its own sockets and takes them out of
      // the room, before any event of an agent made later under the same id (those have higher ids).
      deletions++;
      const id = event.data.agentId;
      const room = agentRoom(id);
      io.to(room).emit('agent:deleted', event.data);
      io.in(room).socketsLeave(room);
      generations.set(id, (generations.get(id) ?? 0) + 1);
    }
    else if (event.agentId !== null) io.to(agentRoom(event.agentId)).emit(event.type, event.data);
  });

  return {
    io,
    async close() {
      off();
      io.disconnectSockets(true);
      // Not io.close(): it also closes the HTTP server and waits for every connection on it, a tRPC WebSocket
      // whose client reconnects at once included, so a shutdown hung while any typed client was connected.
      // http.ts closes the server itself, with its grace period and then a cut.
      io.engine.close();
      await Promise.resolve(io.of('/').adapter.close()).catch((err: unknown) => logger.warn('socket.io close', { error: String(err) }));
    },
  };
}
