import { useQuery } from '@tanstack/preact-query';
import { client, keys, when } from './api.ts';

/** The live instances sharing the database: admins only, so the panel is left out when the query is refused. */
export function Instances() {
  const q = useQuery({ queryKey: keys.instances, queryFn: () => client.instances.list.query(), refetchInterval: 15_000 });
  if (!q.data) return null;
  return (
    <section aria-labelledby="instances-title">
      <h2 id="instances-title">Instances</h2>
      <table aria-label="Instances">
        <thead><tr><th>Id</th><th>Host</th><th>PID</th><th>Running</th><th>Started</th><th>Heartbeat</th></tr></thead>
        <tbody>
          {q.data.map((i) => (
            <tr key={i.id}><td><code>{i.id}</code></td><td>{i.host}</td><td>{i.pid}</td><td>{i.running} / {i.maxConcurrent}</td><td>{when(i.startedAt)}</td><td>{when(i.heartbeatAt)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
