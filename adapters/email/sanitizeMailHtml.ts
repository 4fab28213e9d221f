// A mail's HTML made safe to show an agent: no scripts, forms or frames, and nothing that fetches from
// the network when opened (remote images are tracking pixels): only cid: (the mail's own parts) and data: images.
import sanitizeHtml from 'sanitize-html';

export interface SanitizeMailHtmlOptions {
  /** Maps a cid: content id to a URL (e.g. the stored attachment); without it, or when it answers undefined, cid: is kept. */
  resolveCid?: (contentId: string) => string | undefined;
}

// A value that names no URL: colors, sizes, keywords (no parentheses, so no url(), expression() or var()).
const plainValue = [/^[#\w\s.,%'"-]+$/];
const styleProperties = ['color', 'background-color', 'font-weight', 'font-style', 'font-size', 'font-family', 'text-decoration',
  'text-align', 'vertical-align', 'margin', 'margin-left', 'margin-right', 'margin-top', 'margin-bottom', 'padding', 'padding-left',
  'padding-right', 'padding-top', 'padding-bottom', 'border', 'border-collapse', 'width', 'height', 'line-height', 'white-space'];

export function sanitizeMailHtml(html: string, options: SanitizeMailHtmlOptions = {}): string {
  return sanitizeHtml(html, {
    allowedTags: [...sanitizeHtml.defaults.allowedTags, 'img', 'font', 'center', 'del', 'ins', 'small', 'big', 'u', 's'],
    allowedAttributes: {
      a: ['href', 'name', 'title', 'rel', 'target'],
      img: ['src', 'alt', 'title', 'width', 'height', 'data-remote-src'],
      font: ['color', 'size', 'face'],
      td: ['colspan', 'rowspan', 'align', 'valign', 'width'],
      th: ['colspan', 'rowspan', 'align', 'valign', 'width'],
      table: ['width', 'cellpadding', 'cellspacing', 'border', 'align'],
      ol: ['start', 'type'],
      blockquote: ['type', 'cite'],
      '*': ['style', 'dir', 'align', 'lang'],
    },
    allowedStyles: { '*': Object.fromEntries(styleProperties.map((p) => [p, plainValue])) },
    allowedSchemes: ['http', 'https', 'mailto', 'tel'],
    // Remote image sources are already moved aside by the transform; http(s) here is what resolveCid returns.
    allowedSchemesByTag: { img: ['cid', 'data', 'http', 'https'] },
    allowProtocolRelative: false,
    // style and title are dropped with their content; script, textarea etc. are by the library's defaults.
    nonTextTags: ['style', 'script', 'textarea', 'option', 'noscript', 'title', 'head', 'xml'],
    transformTags: {
      a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, rel: 'noopener noreferrer nofollow', target: '_blank' } }),
      img: (tagName, attribs) => ({ tagName, attribs: imageAttributes(attribs, options) }),
    },
  });
}

function imageAttributes(attribs: Record<string, string>, options: SanitizeMailHtmlOptions): Record<string, string> {
  const { src = '', ...rest } = attribs;
  const cid = /^cid:(.+)$/i.exec(src.trim());
  if (cid) {
    const contentId = cid[1]!.trim().replace(/^<|>$/g, '');
    return { ...rest, src: options.resolveCid?.(contentId) ?? `cid:${contentId}` };
  }
  // Only image data: URIs; a data: text/html could be a page of its own.
  if (/^data:image\/(png|gif|jpe?g|webp|bmp);/i.test(src.trim())) return { ...rest, src: src.trim() };
  // Remote (or anything else): not fetched; the address stays visible as an attribute nothing loads.
  return { ...rest, ...(src ? { 'data-remote-src': src } : {}) };
}

const blockEnd = /<\/(p|div|tr|li|h[1-6]|blockquote|table|pre)\s*>|<br\s*\/?>/gi;

/** The text of an HTML-only mail: tags dropped, blocks and line breaks kept as new lines, entities decoded. */
export function htmlToPlainText(html: string): string {
  const marked = html.replace(blockEnd, (tag) => `${tag}\n`).replace(/<\/t[dh]\s*>/gi, (tag) => `${tag}\t`);
  const text = sanitizeHtml(marked, { allowedTags: [], allowedAttributes: {}, nonTextTags: ['style', 'script', 'textarea', 'option', 'noscript', 'title', 'head', 'xml'] });
  return decodeEntities(text).replace(/[ \t\u00a0]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}

function decodeEntities(text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return named[entity.toLowerCase()] ?? whole;
  });
}
