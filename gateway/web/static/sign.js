/* SERUMS: a patient who holds their own key signs here, in the browser: preference changes, the
 * request that opens their own record, revocations (every form marked data-sign="<action>").
 * The key (PKCS#8, ECDSA P-256) is imported once into WebCrypto as NON-EXTRACTABLE and kept in this
 * browser's IndexedDB; it never leaves the browser. Each action goes through the gateway's
 * prepare -> endorse -> submit steps: the browser signs the proposal, then the transaction
 * (SHA-256, ECDSA, DER-encoded, low-S as Fabric requires). No inline script: the CSP forbids it. */
(() => {
  "use strict";
  const DB = "serums-keys", STORE = "keys";
  const N = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"); // P-256 order

  const box = document.getElementById("own-key");
  if (!box || !window.crypto || !crypto.subtle || !window.indexedDB) return;
  const uid = box.dataset.user;
  const statusEl = document.getElementById("sign-status");
  const say = (text, bad) => { statusEl.textContent = text; statusEl.className = bad ? "problem" : "notice"; };

  function openDb() {
    return new Promise((resolve, reject) => {
      const r = indexedDB.open(DB, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  async function idb(mode, op) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = op(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
    });
  }
  const loadKey = () => idb("readonly", (s) => s.get(uid));
  const keepKey = (key) => idb("readwrite", (s) => s.put(key, uid));

  const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  function b64(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }
  function pemBody(pem) {
    if (!/-----BEGIN PRIVATE KEY-----/.test(pem)) throw new Error("Paste a key that starts with -----BEGIN PRIVATE KEY----- (PKCS#8).");
    return unb64(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
  }
  const toBig = (bytes) => bytes.reduce((x, b) => (x << 8n) | BigInt(b), 0n);
  function toBytes(x) {
    const out = [];
    while (x > 0n) { out.unshift(Number(x & 0xffn)); x >>= 8n; }
    return out.length ? out : [0];
  }
  function derInteger(bytes) {
    const b = Array.from(bytes);
    while (b.length > 1 && b[0] === 0 && !(b[1] & 0x80)) b.shift();
    if (b[0] & 0x80) b.unshift(0);
    return [0x02, b.length, ...b];
  }
  /* WebCrypto answers r||s; Fabric wants DER with s in the lower half of the order. */
  function derLowS(raw) {
    let s = toBig(raw.slice(32));
    if (s > N / 2n) s = N - s;
    const body = [...derInteger(raw.slice(0, 32)), ...derInteger(toBytes(s))];
    return new Uint8Array([0x30, body.length, ...body]);
  }
  async function sign(key, message) {
    const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, message));
    return derLowS(raw);
  }

  async function showState() {
    const key = await loadKey();
    box.querySelector("[data-has-key]").hidden = !key;
    box.querySelector("[data-no-key]").hidden = !!key;
    return key;
  }

  box.querySelector("form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const field = box.querySelector("textarea");
    try {
      const key = await crypto.subtle.importKey("pkcs8", pemBody(field.value), { name: "ECDSA", namedCurve: "P-256" },
        false, ["sign"]);  // false: the key can never be read back out of this browser
      await keepKey(key);
      field.value = "";
      await showState();
      say("Your key is kept in this browser. It signs for you here; it is never sent anywhere.");
    } catch (err) {
      say("This key could not be used: " + (err.message || err), true);
    }
  });

  async function post(url, body, csrf) {
    const headers = { "X-CSRFToken": csrf };
    if (!(body instanceof URLSearchParams)) headers["Content-Type"] = "application/json";
    const r = await fetch(url, { method: "POST", headers, credentials: "same-origin",
      body: body instanceof URLSearchParams ? body : JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) throw new Error((data.title || "Refused") + ": " + (data.detail || ""));
    return data;
  }

  /* The form's fields (with action=<data-sign>) ask the server for the proposal; once committed the
   * browser goes to the form's data-done with ?signed=<tx id> (and, with data-result="x",
   * &x=<the chaincode's result.x>: the grant of the own-record request). */
  async function signedAction(form) {
    const key = await loadKey();
    if (!key) { say("First keep your key in this browser (above).", true); return; }
    const fields = new URLSearchParams(new FormData(form));
    fields.set("action", form.dataset.sign);
    const csrf = fields.get("csrf_token");
    const urls = box.dataset;
    try {
      say("Preparing…");
      const prepared = await post(urls.prepare, fields, csrf);
      say("Signing with your key…");
      const endorsed = await post(urls.endorse, { proposal: prepared.proposal,
        signature: b64(await sign(key, unb64(prepared.message))) }, csrf);
      say("Signing the transaction and recording it on the ledger…");
      const done = await post(urls.submit, { transaction: endorsed.transaction,
        signature: b64(await sign(key, unb64(endorsed.message))) }, csrf);
      const next = new URL(form.dataset.done, window.location.href);
      next.searchParams.set("signed", done.transaction_id);
      const wanted = form.dataset.result;
      if (wanted && done.result && done.result[wanted]) next.searchParams.set(wanted, done.result[wanted]);
      window.location.assign(next.toString());
    } catch (err) {
      say(err.message || String(err), true);
    }
  }

  document.querySelectorAll("form[data-sign]").forEach((form) => form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    signedAction(form);
  }));
  showState();
})();
