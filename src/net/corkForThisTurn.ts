// Writes made in one turn of the event loop leave a socket in one system call: the socket is corked at
// its first write of the turn and uncorked once the turn's callbacks and promises have run. On hosts where
// a write is an expensive system call, and with writes that come in bursts (a batch of replies answered
// at once, each answer starting the next command), this is most of a socket's cost.
export interface Corkable { cork(): void; uncork(): void }

const corked = new Set<Corkable>();

function uncorkAll(): void {
  for (const socket of corked) socket.uncork();
  corked.clear();
}

export function corkForThisTurn(socket: Corkable): void {
  if (corked.has(socket)) return;
  socket.cork();
  if (corked.size === 0) process.nextTick(uncorkAll);
  corked.add(socket);
}
