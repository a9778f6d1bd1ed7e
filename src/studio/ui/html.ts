// Preact with htm tagged templates (htm/preact binds htm to Preact's h): components without a JSX build step.
export { html } from 'htm/preact';
