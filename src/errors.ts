/**
 * The one error type routelab raises for bad input: a checkpoint, dataset, spec or argument that is not what was
 * expected. `where` names the file/field/flag; the message says what was expected. The CLI prints these without a
 * stack trace; anything else is a bug and keeps its stack.
 */
export class RoutelabError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'RoutelabError';
  }
}
