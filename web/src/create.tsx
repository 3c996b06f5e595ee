import { useMutation } from '@tanstack/preact-query';
import { useState } from 'preact/hooks';
import { client, keys, messageOf, queryClient } from './api.ts';

const HANDLERS = ['demo', 'webhook', 'llm'] as const;

/** Create an agent: the server checks the config against the handler's schema and says which field is wrong. */
export function CreateAgent({ onCreated }: { onCreated: (id: string) => void }) {
  const [name, setName] = useState('');
  const [id, setId] = useState('');
  const [handler, setHandler] = useState<string>('demo');
  const [config, setConfig] = useState('{"steps":5,"stepMs":300}');
  const [localError, setLocalError] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (input: Parameters<typeof client.agents.create.mutate>[0]) => client.agents.create.mutate(input),
    onSuccess: (agent) => {
      void queryClient.invalidateQueries({ queryKey: keys.agents });
      setName('');
      setId('');
      onCreated(agent.id);
    },
  });

  function submit(e: Event) {
    e.preventDefault();
    setLocalError(null);
    let parsed: Record<string, unknown> = {};
    if (config.trim() !== '') {
      try {
        parsed = JSON.parse(config) as Record<string, unknown>;
      } catch (err) {
        return setLocalError(`config: not valid JSON (${messageOf(err)})`);
      }
    }
    create.mutate({ name, handler, config: parsed, ...(id.trim() !== '' && { id: id.trim() }) });
  }

  const error = localError ?? (create.error ? messageOf(create.error) : null);
  return (
    <section aria-labelledby="create-title">
      <h2 id="create-title">Create an agent</h2>
      <form class="grid" onSubmit={submit}>
        <label for="new-name">Name</label>
        <input id="new-name" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
        <label for="new-id">Id (optional)</label>
        <input id="new-id" value={id} onInput={(e) => setId(e.currentTarget.value)} placeholder="generated when empty" />
        <label for="new-handler">Handler</label>
        <select id="new-handler" value={handler} onChange={(e) => setHandler(e.currentTarget.value)}>
          {HANDLERS.map((h) => <option key={h} value={h}>{h}</option>)}
        </select>
        <label for="new-config">Config (JSON)</label>
        <textarea id="new-config" rows={3} value={config} onInput={(e) => setConfig(e.currentTarget.value)} spellcheck={false} />
        <span />
        <button type="submit" disabled={create.isPending}>Create agent</button>
        {error && <p role="alert" class="error wide">{error}</p>}
      </form>
    </section>
  );
}
