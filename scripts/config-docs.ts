// Prints the README's table of training options from the schema (npm run docs:config).
import { optionsMarkdown } from '../src/train/config.js';

console.log(optionsMarkdown());
