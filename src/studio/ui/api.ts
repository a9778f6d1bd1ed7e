// Calls to the studio API. The access token travels as the HttpOnly cookie the printed URL set,
// so the page's code never holds it; an error reply becomes an ApiError with the server's message.
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly body: Record<string, unknown>) { super(message); }
}

export async function api<T = any>(method: string, url: string, body?: unknown, raw?: BodyInit): Promise<T> {
  const res = await fetch(url, {
    method, credentials: 'same-origin',
    headers: raw ? {} : body !== undefined ? { 'content-type': 'application/json' } : {},
    body: raw ?? (body !== undefined ? JSON.stringify(body) : undefined),
  });
  const text = await res.text();
  let data: any = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: text }; }
  if (!res.ok) throw new ApiError(res.status, data.error ?? res.statusText, data);
  return data as T;
}

export const enc = encodeURIComponent;
