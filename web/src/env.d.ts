// Vite bundles imported CSS; TypeScript needs to know such an import is allowed.
declare module '*.css';
