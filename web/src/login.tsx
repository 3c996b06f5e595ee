import { useState } from 'preact/hooks';
import { clearToken, client, messageOf, saveToken } from './api.ts';

/**
 * Paste a JWT (`npm run token -- --sub alice` prints one). It is tried once against the server before it is kept,
 * so a wrong token shows the server's own message here rather than an empty dashboard.
 */
export function Login({ onLogin }: { onLogin: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    saveToken(token.trim());
    try {
      await client.agents.list.query();
      onLogin();
    } catch (err) {
      clearToken();
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <h1>Agent scheduler</h1>
      <form onSubmit={submit}>
        <label for="token">Access token (JWT)</label>
        <textarea id="token" rows={4} value={token} onInput={(e) => setToken(e.currentTarget.value)} required spellcheck={false} />
        <button type="submit" disabled={busy || token.trim() === ''}>Log in</button>
        {error && <p role="alert" class="error">{error}</p>}
      </form>
      <p class="hint">The token is kept in this tab only (sessionStorage). Get one with <code>npm run token -- --sub alice</code> (add <code>--role admin</code> for the instances panel).</p>
    </main>
  );
}
