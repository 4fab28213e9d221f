// How many SMS a text costs: GSM-7 (160 characters, 153 per part when split; the extension table's
// characters take two) unless one character is outside it, then UCS-2 (70, 67 per part; characters
// beyond the BMP, most emoji, take two units).

const gsmBasic = new Set(
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
);
const gsmExtension = new Set('^{}\\[~]|€\f');

export interface SmsSegments {
  encoding: 'GSM-7' | 'UCS-2';
  /** Length in the encoding's units (septets or UTF-16 code units). */
  units: number;
  segments: number;
  /** Units per segment at this length (160/153 or 70/67). */
  perSegment: number;
  /** Units left in the last segment before one more is needed. */
  remaining: number;
}

export function smsSegments(text: string): SmsSegments {
  let septets = 0;
  let gsm = true;
  for (const ch of text) {
    if (gsmBasic.has(ch)) septets += 1;
    else if (gsmExtension.has(ch)) septets += 2;
    else { gsm = false; break; }
  }
  if (gsm) return count('GSM-7', septets, 160, 153);
  return count('UCS-2', text.length, 70, 67);
}

function count(encoding: SmsSegments['encoding'], units: number, single: number, part: number): SmsSegments {
  const perSegment = units <= single ? single : part;
  const segments = units === 0 ? 1 : Math.ceil(units / perSegment);
  return { encoding, units, segments, perSegment, remaining: segments * perSegment - units };
}
