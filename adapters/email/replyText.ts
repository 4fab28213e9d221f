// The agent's view of a reply: the text above the quoted history and the signature. The full body is
// kept beside it; this is only what an agent reads first. When stripping leaves nothing (a bare
// forward, a mail that starts with a quote), the whole text is the view.

// "-----Original Message-----" (Outlook) and the Foxmail / QQ Mail "------------------ 原始邮件 ------------------".
const separatorLine = /^-{2,}[\s\u00a0]*(original message|ursprüngliche nachricht|message d'origine|mensaje original|原始邮件|原始郵件|原始信件|回复的邮件|转发的邮件|forwarded message)[\s\u00a0]*-{2,}$/i;
// "From:"-then-"Sent:" header blocks of Outlook, Foxmail and their translations.
const fromField = /^\*?(from|发件人|寄件者|寄件人|von|de|差出人)[\s\u00a0]*\*?[:：]/i;
const sentField = /^\*?(sent|date|发送时间|日期|时间|寄件日期|傳送時間|gesendet|datum|envoyé|enviado|送信日時)[\s\u00a0]*\*?[:：]/i;
// "On Tue, Dec 1, 2026 at 4:00 PM Name <a@b> wrote:" (Gmail, Apple Mail, Thunderbird), possibly wrapped over lines.
const attributionLine = [
  /^on\s.{4,400}\swrote:$/i,
  /^(在|于|於).{2,400}(写道|寫道)[:：]?$/,
  /^am\s.{4,400}\sschrieb\s.{0,200}:$/i,
  /^le\s.{4,400}\sa écrit\s?:$/i,
  /^el\s.{4,400}\sescribió:$/i,
];
const attributionStart = /^(on|在|于|於|am|le|el)[\s\u00a0]/i;
// Mobile signatures: "Sent from my iPhone", "发自我的iPhone", "Get Outlook for Android".
const mobileSignature = /^(sent from my\s|sent from (outlook|mail|yahoo)|get outlook for\s|发自我的|来自我的|從我的 ?\S+ ?傳送|envoyé de mon\s|von meinem\s.{0,40}gesendet|enviado desde mi\s)/i;
// RFC 3676 "-- " (many clients drop the trailing space).
const signatureDelimiter = /^--[ \u00a0]?$/;
const decorationLine = /^[\s\u00a0_\-=*~]*$/;

export function replyTextOf(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const cut = cutIndex(lines);
  const kept = lines.slice(0, cut);
  while (kept.length && decorationLine.test(kept[kept.length - 1]!)) kept.pop();
  const view = kept.join('\n').trim();
  return view || text.trim();
}

function cutIndex(lines: string[]): number {
  const trailingQuote = trailingQuoteStart(lines);
  for (let i = 0; i < lines.length; i++) {
    if (i >= trailingQuote) return trailingQuote;
    const line = lines[i]!.trim();
    if (!line) continue;
    if (separatorLine.test(line) || signatureDelimiter.test(lines[i]!) || mobileSignature.test(line)) return i;
    if (fromField.test(line) && lines.slice(i + 1, i + 5).some((next) => sentField.test(next.trim()))) return i;
    if (attributionStart.test(line) || line.startsWith('>')) {
      const bare = (k: number) => (lines[k] ?? '').trim().replace(/^>[\s>]*/, '');
      for (let span = 1; span <= 3; span++) {
        const joined = Array.from({ length: span }, (_, k) => bare(i + k)).join(' ').replace(/\s+/g, ' ').trim();
        if (attributionLine.some((pattern) => pattern.test(joined))) return i;
      }
    }
  }
  return lines.length;
}

/** Where the run of `>` lines that goes on to the end begins (blank lines allowed); lines.length when none. */
function trailingQuoteStart(lines: string[]): number {
  let start = lines.length;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line) continue;
    if (!line.startsWith('>')) break;
    start = i;
  }
  return start;
}
