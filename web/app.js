// facerec's page: recognise a photo (POST /, polling GET /status/{id} while it is pending) and
// manage the enrolled people (GET/POST/DELETE /people...). Plain DOM; user data only ever goes
// into textContent and attributes, never into HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = 'facerec.apiKey'; // sessionStorage: kept for this tab only
  const POLL_GIVE_UP_MS = 15 * 60 * 1000;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

  function setStatus(node, text, kind) {
    node.textContent = text;
    node.className = 'status' + (kind ? ' ' + kind : '');
  }

  async function readJson(r) {
    try {
      return await r.json();
    } catch {
      return null;
    }
  }

  function errorOf(r, data) {
    return (data && data.error) || `the server answered ${r.status} ${r.statusText}`.trim();
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  // ---- views ----

  function showView() {
    const people = location.hash === '#people';
    $('view-recognise').hidden = people;
    $('view-people').hidden = !people;
    $('tab-recognise').classList.toggle('active', !people);
    $('tab-people').classList.toggle('active', people);
    if (people) loadPeople();
  }

  // ---- recognise ----

  let generation = 0; // a newer photo makes older answers stale
  let shownUrl = null;

  function showJson(data) {
    $('json-box').hidden = data == null;
    $('json').textContent = data == null ? '' : JSON.stringify(data, null, 2);
  }

  async function recognise(file) {
    const gen = ++generation;
    const status = $('status');
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = URL.createObjectURL(file);
    const img = $('shown');
    img.src = shownUrl;
    $('stage').querySelectorAll('.box').forEach((b) => b.remove());
    $('figure').hidden = false;
    showJson(null);
    setStatus(status, `Recognising ${file.name}…`, 'busy');

    const form = new FormData();
    form.append('inputFile', file, file.name);
    let r, data;
    try {
      r = await fetch('/', { method: 'POST', body: form });
      data = await readJson(r);
    } catch (e) {
      if (gen === generation) setStatus(status, `The server could not be reached (${e.message}).`, 'error');
      return;
    }
    if (gen !== generation) return;
    if (r.status === 202 && data && data.job_id) {
      data = await poll(data.job_id, gen);
      if (!data) return;
    } else if (!r.ok) {
      setStatus(status, 'Not recognised: ' + errorOf(r, data), 'error');
      showJson(data);
      return;
    }
    try {
      await img.decode(); // natural size known before boxes are placed
    } catch {
      // the browser cannot show this image; the JSON still says what was found
    }
    if (gen === generation) showResult(data);
  }

  // Polls GET /status/{id} until the job is done; null when it failed, was superseded or took
  // too long (the status line then says so).
  async function poll(id, gen) {
    const status = $('status');
    const t0 = Date.now();
    let delay = 300;
    for (;;) {
      const s = Math.round((Date.now() - t0) / 1000);
      setStatus(status, `Job ${id} is pending: waiting for a worker (${s} s)…`, 'busy');
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
      if (gen !== generation) return null;
      if (Date.now() - t0 > POLL_GIVE_UP_MS) {
        setStatus(status, `Job ${id} is still pending; gave up waiting. Poll /status/${id} later.`, 'error');
        return null;
      }
      let r, data;
      try {
        r = await fetch('/status/' + encodeURIComponent(id), { cache: 'no-store' });
        data = await readJson(r);
      } catch {
        continue; // a dropped connection: ask again
      }
      if (gen !== generation) return null;
      if (r.status === 202) continue;
      if (!r.ok) {
        setStatus(status, `Job ${id}: ` + errorOf(r, data), 'error');
        showJson(data);
        return null;
      }
      return data;
    }
  }

  function showResult(data) {
    const status = $('status');
    showJson(data);
    if (!data || data.status !== 'done') {
      setStatus(status, 'The job failed: ' + ((data && data.error) || 'no answer'), 'error');
      return;
    }
    const img = $('shown');
    const faces = Array.isArray(data.faces) ? data.faces : [];
    // boxes are in the pixels of the image the worker decoded; it says its size when it knows
    const w = (data.image && data.image.width) || img.naturalWidth || 1;
    const h = (data.image && data.image.height) || img.naturalHeight || 1;
    const stage = $('stage');
    for (const f of faces) {
      if (!Array.isArray(f.box) || f.box.length !== 4) continue;
      const [x1, y1, x2, y2] = f.box.map(Number);
      const known = f.name && f.name !== 'Unknown';
      const box = el('div', 'box ' + (known ? 'known' : 'unknown'));
      box.style.left = (100 * x1) / w + '%';
      box.style.top = (100 * y1) / h + '%';
      box.style.width = (100 * (x2 - x1)) / w + '%';
      box.style.height = (100 * (y2 - y1)) / h + '%';
      const label = el('span', 'label');
      label.append(el('span', 'name', f.name || 'Unknown'));
      if (typeof f.similarity === 'number') label.append(el('span', 'sim', f.similarity.toFixed(2)));
      if (y1 / h < 0.08) box.classList.add('label-inside'); // no room above the box
      box.append(label);
      stage.append(box);
    }
    const named = faces.filter((f) => f.name && f.name !== 'Unknown').map((f) => f.name);
    let text = faces.length === 0 ? 'No face found.' : `${plural(faces.length, 'face')} found`;
    if (faces.length) text += named.length ? `: ${named.join(', ')}` : ', none of them known';
    if (faces.length && named.length < faces.length && named.length) {
      text += ` and ${plural(faces.length - named.length, 'stranger')}`;
    }
    setStatus(status, faces.length ? text + '.' : text, 'done');
  }

  function setupDrop() {
    const drop = $('drop');
    const input = $('photo');
    input.addEventListener('change', () => {
      if (input.files.length) recognise(input.files[0]);
      input.value = ''; // the same file again is a new request
    });
    for (const ev of ['dragenter', 'dragover']) {
      drop.addEventListener(ev, (e) => {
        e.preventDefault();
        drop.classList.add('over');
      });
    }
    for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) recognise(file);
    });
    // a photo dropped beside the zone must not replace the page
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
  }

  // ---- people ----

  const personPath = (name) => '/people/' + encodeURIComponent(name);
  let thumbUrls = [];
  let peopleLoad = 0;

  function keyHeaders() {
    const k = sessionStorage.getItem(KEY);
    return k ? { 'X-Api-Key': k } : {};
  }

  // Shows the key form after a 401; false when r was not a 401.
  function needKey(r) {
    if (r.status !== 401) return false;
    const form = $('key-form');
    form.hidden = false;
    $('key-msg').textContent = sessionStorage.getItem(KEY)
      ? 'The API key was refused (401). Enter the right key.'
      : 'This server needs an API key for the people endpoints (401). Enter it to go on.';
    $('key').focus();
    return true;
  }

  async function loadPeople() {
    const load = ++peopleLoad;
    const status = $('people-status');
    $('forget-key').hidden = !sessionStorage.getItem(KEY);
    setStatus(status, 'Loading…', 'busy');
    let r, data;
    try {
      r = await fetch('/people', { headers: keyHeaders(), cache: 'no-store' });
      data = await readJson(r);
    } catch (e) {
      setStatus(status, `The server could not be reached (${e.message}).`, 'error');
      return;
    }
    if (load !== peopleLoad) return;
    if (needKey(r)) {
      setStatus(status, 'An API key is needed to see the people.', 'error');
      renderPeople([]);
      return;
    }
    $('key-form').hidden = true;
    if (!r.ok || !data || !Array.isArray(data.people)) {
      setStatus(status, 'Cannot list the people: ' + errorOf(r, data), 'error');
      return;
    }
    renderPeople(data.people);
    const n = data.people.length;
    setStatus(status, n ? `${n} ${n === 1 ? 'person' : 'people'} enrolled.` : 'No one is enrolled yet.');
  }

  function renderPeople(people) {
    thumbUrls.forEach((u) => URL.revokeObjectURL(u));
    thumbUrls = [];
    const list = $('people');
    list.replaceChildren();
    for (const p of people) {
      const name = String(p.name);
      const li = el('li', 'person');
      li.dataset.name = name;
      const thumb = el('div', 'thumb', name.slice(0, 1).toUpperCase());
      const info = el('div', 'info');
      info.append(el('strong', 'name', name), el('span', 'count', plural(Number(p.examples) || 0, 'example')));
      const del = el('button', 'delete', 'Delete');
      del.type = 'button';
      del.addEventListener('click', () => removePerson(name, Number(p.examples) || 0));
      li.append(thumb, info, del);
      list.append(li);
      loadThumb(name, thumb);
    }
  }

  async function loadThumb(name, holder) {
    try {
      const r = await fetch(personPath(name) + '/photo', { headers: keyHeaders(), cache: 'no-store' });
      if (!r.ok) return; // none stored: the initial stays
      const url = URL.createObjectURL(await r.blob());
      thumbUrls.push(url);
      const img = el('img');
      img.alt = 'photo of ' + name;
      img.src = url;
      holder.replaceChildren(img);
      holder.classList.add('loaded');
    } catch {
      // the initial stays
    }
  }

  async function removePerson(name, examples) {
    if (!confirm(`Delete ${name} and ${plural(examples, 'example')}?`)) return;
    const status = $('people-status');
    let r, data;
    try {
      r = await fetch(personPath(name), { method: 'DELETE', headers: keyHeaders() });
      data = await readJson(r);
    } catch (e) {
      setStatus(status, `The server could not be reached (${e.message}).`, 'error');
      return;
    }
    if (needKey(r)) return;
    if (!r.ok) {
      setStatus(status, `Cannot delete ${name}: ` + errorOf(r, data), 'error');
      return;
    }
    await loadPeople();
    setStatus(status, `Deleted ${name}.`, 'done');
  }

  async function enrol(e) {
    e.preventDefault();
    const status = $('enrol-status');
    const name = $('enrol-name').value.trim();
    const files = [...$('enrol-photos').files];
    if (!name || !files.length) {
      setStatus(status, 'A name and at least one photo are needed.', 'error');
      return;
    }
    const form = new FormData();
    files.forEach((f, i) => form.append('photo' + i, f, f.name));
    setStatus(status, `Enrolling ${name} from ${plural(files.length, 'photo')}…`, 'busy');
    $('enrol-button').disabled = true;
    let r, data;
    try {
      r = await fetch(personPath(name), { method: 'POST', body: form, headers: keyHeaders() });
      data = await readJson(r);
    } catch (err) {
      setStatus(status, `The server could not be reached (${err.message}).`, 'error');
      return;
    } finally {
      $('enrol-button').disabled = false;
    }
    if (needKey(r)) {
      setStatus(status, 'Not enrolled: an API key is needed.', 'error');
      return;
    }
    if (!r.ok || !data) {
      setStatus(status, `Not enrolled: ` + errorOf(r, data), 'error');
      return;
    }
    let text = `Enrolled ${plural(data.added, 'photo')} of ${data.name}: ${plural(data.examples, 'example')} in all.`;
    const skipped = Array.isArray(data.skipped) ? data.skipped : [];
    if (skipped.length) text += ' Skipped: ' + skipped.map((s) => `${s.file} (${s.error})`).join('; ') + '.';
    $('enrol-form').reset();
    await loadPeople();
    setStatus(status, text, 'done');
  }

  function setupPeople() {
    $('enrol-form').addEventListener('submit', enrol);
    $('refresh').addEventListener('click', loadPeople);
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, $('key').value);
      $('key').value = '';
      loadPeople();
    });
    $('forget-key').addEventListener('click', () => {
      sessionStorage.removeItem(KEY);
      loadPeople();
    });
  }

  setupDrop();
  setupPeople();
  window.addEventListener('hashchange', showView);
  showView();
})();
