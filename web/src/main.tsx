import { QueryClientProvider, useQuery } from '@tanstack/preact-query';
import { render } from 'preact';
import { useState } from 'preact/hooks';
import { AgentsTable } from './agents.tsx';
import { clearToken, client, keys, messageOf, queryClient, readToken } from './api.ts';
import { CreateAgent } from './create.tsx';
import { AgentDetail } from './detail.tsx';
import { Instances } from './instances.tsx';
import { useLiveRuns, useSchedulerStats } from './live.ts';
import { Login } from './login.tsx';
import './style.css';

/**
 * The dashboard (README "Dashboard"): a login with a pasted token, then the caller's agents with live
 * progress, one agent's detail, a form to create one, and the instances panel for admins. Everything
 * it loads comes from this server: the bundle and the API (tRPC over HTTP and one WebSocket).
 */
function Dashboard({ onLogout }: { onLogout: () => void }) {
  const agents = useQuery({ queryKey: keys.agents, queryFn: () => client.agents.list.query(), refetchInterval: 30_000 });
  const [selected, setSelected] = useState<string | null>(null);
  const list = agents.data ?? [];
  const live = useLiveRuns(list.map((a) => a.id));
  const agent = list.find((a) => a.id === selected) ?? null;
  const stats = useSchedulerStats();
  return (
    <>
      <header>
        <h1>Agent scheduler</h1>
        {stats && (
          <span class="stats" aria-label="Scheduler">
            {stats.runningAgentsCount} / {stats.maxConcurrentAgents} running · {stats.queuedTasksCount} queued · {stats.scheduledTasksCount} scheduled · {stats.pausedJobsCount} paused
          </span>
        )}
        <button type="button" onClick={onLogout}>Log out</button>
      </header>
      <main>
        <section aria-labelledby="agents-title">
          <h2 id="agents-title">Agents</h2>
          {agents.error ? <p role="alert" class="error">{messageOf(agents.error)}</p>
            : agents.data ? <AgentsTable agents={list} live={live} selected={selected} onSelect={setSelected} /> : <p>Loading…</p>}
        </section>
        {agent && <AgentDetail key={agent.id} agent={agent} onDeleted={() => setSelected(null)} />}
        <CreateAgent onCreated={setSelected} />
        <Instances />
      </main>
    </>
  );
}

function App() {
  const [loggedIn, setLoggedIn] = useState(readToken() !== '');
  const logout = () => {
    clearToken();
    queryClient.clear();
    void client.close();
    setLoggedIn(false);
  };
  return loggedIn ? <Dashboard onLogout={logout} /> : <Login onLogin={() => setLoggedIn(true)} />;
}

render(<QueryClientProvider client={queryClient}><App /></QueryClientProvider>, document.getElementById('app')!);
