import type { TRPCBuiltRouter, TRPCMutationProcedure } from '@trpc/server';
import type { z } from 'zod';
import type { demoConfig } from '../src/handlers/demo.ts';
import type { llmConfig } from '../src/handlers/llm.ts';
import type { webhookConfig } from '../src/handlers/webhook.ts';
import type { AppRouter } from '../src/transport/trpc/router.ts';

/**
 * The server validates `handler` and `config` at run time against whatever handlers it has registered, so
 * its router can only say `handler: string`. The client knows more: the built-in handlers and their config
 * schemas, plus whatever the embedding app declares, so `agents.create` is narrowed here, in types only.
 */

/** The built-in handlers' configs as a client sends them (`z.input`: fields with defaults may be left out). */
export interface BuiltInHandlers {
  demo: z.input<typeof demoConfig>;
  webhook: z.input<typeof webhookConfig>;
  llm: z.input<typeof llmConfig>;
}

/**
 * Handler name → config type, as an embedding app declares its own: `createSchedulerClient<{ resize: { width: number } }>(…)`.
 * A name that is also built in replaces it (the server's registry does the same).
 */
export type HandlerMap<H> = { [K in keyof H]: object };

/** Any handler name, any JSON-object config: the untyped view, for callers that take names at run time (a CLI). */
export type AnyHandlers = Record<string, Record<string, unknown>>;

/** The handlers a client accepts: the built-in ones and the app's own. */
export type KnownHandlers<H extends HandlerMap<H>> = Omit<BuiltInHandlers, keyof H> & H;

/** `config` may be left out only when the handler's config has no required field (the server then parses `{}`). */
type ConfigField<C> = Partial<C> extends C ? { config?: C } : { config: C };

/** One object type instead of an intersection, so an editor's hover and a compile error read plainly. */
type Flat<T> = { [K in keyof T]: T[K] };

type Records = AppRouter['_def']['record'];
type Agents = Records['agents'];
type RouterInput<P> = P extends TRPCMutationProcedure<infer D> ? D['input'] : never;
type WithInput<P, I> = P extends TRPCMutationProcedure<infer D> ? TRPCMutationProcedure<Omit<D, 'input'> & { input: I }> : never;

/** `agents.create`'s input, one member per handler, so `handler` picks which `config` type applies. */
export type AgentCreateInput<H extends HandlerMap<H> = Record<never, never>> = {
  [K in keyof KnownHandlers<H> & string]: Flat<Omit<RouterInput<Agents['create']>, 'handler' | 'config'> & { handler: K } & ConfigField<KnownHandlers<H>[K]>>;
}[keyof KnownHandlers<H> & string];

/**
 * `agents.update`'s input. It names no handler (the agent keeps its own), so a new `config` is checked
 * against every known handler's config: a typo such as `{ steps: 'four' }` fails, the server checks the rest.
 */
export type AgentUpdateInput<H extends HandlerMap<H> = Record<never, never>> = Omit<RouterInput<Agents['update']>, 'config'> & {
  config?: KnownHandlers<H>[keyof KnownHandlers<H>];
};

/** The server's router with `agents.create` and `agents.update` narrowed as above; every other procedure as it is. */
export type SchedulerRouter<H extends HandlerMap<H> = Record<never, never>> = TRPCBuiltRouter<
  AppRouter['_def']['_config']['$types'],
  Omit<Records, 'agents'> & {
    agents: Omit<Agents, 'create' | 'update'> & {
      create: WithInput<Agents['create'], AgentCreateInput<H>>;
      update: WithInput<Agents['update'], AgentUpdateInput<H>>;
    };
  }
>;
