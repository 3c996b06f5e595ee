import type WebSocket from 'ws';

/**
 * Sends one tRPC message and resolves with the first answer of the same id that `pred` accepts (tRPC's keep-alive
 * "PING" frames are not JSON and are passed over).
 */
export function trpcAnswer(ws: WebSocket, message: { id: number; method: string; params?: unknown }, pred: (m: any) => boolean = () => true): Promise<any> {
  return new Promise((resolve) => {
    const onMessage = (raw: WebSocket.RawData) => {
      let m: { id?: unknown };
      try {
        m = JSON.parse(String(raw)) as { id?: unknown };
      } catch {
        return;
      }
      if (m.id !== message.id || !pred(m)) return;
      ws.off('message', onMessage);
      resolve(m);
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify(message));
  });
}
