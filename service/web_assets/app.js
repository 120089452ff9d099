// cmar's web page: search by name, an artist's similar artists with explanations, cold-start
// queries and the map. Plain JavaScript, no dependencies, every request to this host's API.
"use strict";

const ROOT = document.body.dataset.root || "";
const KEY_STORE = "cmar-read-key";
const MAX_OFFSET = 10000;  // the API's largest offset

// ---- helpers ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The API's own message: a string, or FastAPI's list of {loc, msg} naming the field.
function messageOf(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("\n");
  }
  return `the API answered ${status}`;
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = { ...options, body: JSON.stringify(options.json), method: options.method || "POST" };
  }
  const response = await fetch(ROOT + path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, body));
  return body;
}

function alertBox(error) {
  const box = h("div", { class: "alert", role: "alert" }, error.message || String(error));
  if (error.status === 401 || error.status === 403) box.append(keyForm());
  return box;
}

// Reads may need a key (the read key, or the API key): asked once, kept for this tab only.
function keyForm() {
  const input = h("input", { id: "read-key", type: "password", autocomplete: "off" });
  return h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        event.stopPropagation();  // not the form it is shown in (search, cold start)
        sessionStorage.setItem(KEY_STORE, input.value);
        location.reload();
      },
    },
    h("label", { for: "read-key" }, "Key for reading (the read key or the API key)"),
    h("div", { class: "row" }, input, h("button", { type: "submit" }, "Use key")),
  );
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function artistHref(id) {
  return `${ROOT}/ui/artists/${encodeURIComponent(id)}`;
}

function fmt(x, digits = 3) {
  return Number(x).toFixed(digits);
}

// ---- an accessible combobox with a list of suggestions (WAI-ARIA combobox pattern) ----

let comboCount = 0;

function combobox({ label, placeholder, fetchItems, onPick, id }) {
  comboCount += 1;
  const inputId = id || `combo-${comboCount}`;
  const listId = `${inputId}-list`;
  const input = h("input", {
    id: inputId,
    type: "search",
    role: "combobox",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    autocomplete: "off",
    placeholder,
  });
  const list = h("ul", { id: listId, role: "listbox", "aria-label": `Suggestions: ${label}`, hidden: true });
  let items = [];
  let active = -1;
  let asked = 0;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    const options = list.querySelectorAll('[role="option"]');
    options.forEach((o, i) => o.setAttribute("aria-selected", i === index ? "true" : "false"));
    active = index;
    if (index >= 0 && options[index]) {
      input.setAttribute("aria-activedescendant", options[index].id);
      options[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function pick(item) {
    close();
    onPick(item, input);
  }

  function show(found) {
    items = found;
    list.replaceChildren(
      ...found.map((item, i) =>
        h(
          "li",
          {
            id: `${listId}-${i}`,
            role: "option",
            "aria-selected": "false",
            onmousedown: (event) => event.preventDefault(),  // keep the focus in the input
            onclick: () => pick(item),
          },
          h("span", {}, item.label),
          item.sub ? h("span", { class: "sub" }, item.sub) : null,
        ),
      ),
    );
    list.hidden = found.length === 0;
    input.setAttribute("aria-expanded", found.length ? "true" : "false");
    highlight(-1);
  }

  const suggest = debounce(async () => {
    const text = input.value.trim();
    const ticket = ++asked;
    if (!text) return show([]);
    try {
      const found = await fetchItems(text);
      if (ticket === asked) show(found);
      problem.replaceChildren();
    } catch (error) {
      if (ticket === asked) {
        show([]);
        problem.replaceChildren(alertBox(error));  // the API's message: a missing key, say
      }
    }
  }, 120);

  input.addEventListener("input", suggest);
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (list.hidden && items.length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
      }
      highlight(Math.min(active + 1, items.length - 1));
    } else if (event.key === "ArrowUp" && !list.hidden) {
      event.preventDefault();
      highlight(Math.max(active - 1, 0));
    } else if (event.key === "Enter" && !list.hidden && active >= 0) {
      event.preventDefault();
      pick(items[active]);
    } else if (event.key === "Escape") {
      close();
    }
  });
  const problem = h("div", {});
  const wrap = h("div", { class: "combo" }, h("label", { for: inputId }, label), input, list, problem);
  return { wrap, input, suggest };
}

async function findArtists(text, limit = 8) {
  const body = await api(`/artists?q=${encodeURIComponent(text)}&limit=${limit}`);
  return body.results.map((a) => ({
    label: a.name,
    sub: [a.modalities.join(" + "), a.popularity === null ? null : `popularity ${Math.round(a.popularity)}`]
      .filter(Boolean)
      .join(" · "),
    value: a.artist_id,
    artist: a,
  }));
}

// ---- results with explanations ----

// A modality's name, marked when the model predicted it (an artist known by too few modalities).
function side(pair, which) {
  const name = pair[`${which}_modality`];
  return (pair.completed || []).includes(which) ? `${name} (predicted)` : name;
}

function explanationOf(why) {
  if (!why) return h("p", { class: "why note" }, "No explanation: this index was built without its data.");
  const parts = [];
  if (why.strongest) {
    const best = why.pairs[0];
    parts.push(
      h("span", {}, "Closest through ", h("strong", {}, `${side(best, "query")} ↔ ${side(best, "result")}`),
        ` (cosine ${fmt(best.cosine, 2)})`),
    );
  }
  if (why.shared_tags.length) {
    parts.push(h("span", {}, "; shares ", h("strong", {}, why.shared_tags.map((t) => t.tag).join(", "))));
  } else {
    parts.push(h("span", { class: "note" }, "; no shared tags"));
  }
  const table = h(
    "table",
    {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "query"), h("th", { scope: "col" }, "result"),
      h("th", { scope: "col" }, "cosine"), h("th", { scope: "col" }, "share of score"))),
    h("tbody", {}, why.pairs.map((p) =>
      h("tr", {}, h("td", {}, side(p, "query")), h("td", {}, side(p, "result")), h("td", {}, fmt(p.cosine)),
        h("td", {}, fmt(p.contribution))))),
  );
  return h("div", { class: "why" }, h("p", { class: "why" }, parts),
    h("details", {}, h("summary", {}, "Every modality pair"), table));
}

function resultList(results, start = 1) {
  return h(
    "ol",
    { class: "results", role: "list", start: start > 1 ? start : null, "aria-label": "Similar artists" },
    results.map((r, i) =>
      h(
        "li",
        { "data-artist-id": r.artist_id },
        h("div", { class: "result-head" },
          start > 1 ? h("span", { class: "note" }, `${start + i}.`) : null,
          h("a", { href: artistHref(r.artist_id) }, r.name),
          h("span", { class: "score" }, `score ${fmt(r.score)}`),
          h("span", {}, r.modalities.map((m) => h("span", { class: "badge" }, m)))),
        r.explanation !== undefined ? explanationOf(r.explanation) : null,
      ),
    ),
  );
}

// ---- pages ----

function searchPage(main) {
  document.title = "cmar: find similar artists";
  const results = h("section", {});
  const combo = combobox({
    label: "Artist name",
    id: "artist-search",
    placeholder: "e.g. the first letters of a name; typos are fine",
    fetchItems: (text) => findArtists(text),
    onPick: (item) => {
      location.href = artistHref(item.value);
    },
  });
  async function listAll(event) {
    event.preventDefault();
    const text = combo.input.value.trim();
    if (!text) return;
    try {
      const found = await findArtists(text, 50);
      results.replaceChildren(
        h("h2", { role: "status" }, `${found.length} artist${found.length === 1 ? "" : "s"} found`),
        h("ul", { class: "results" }, found.map((a) =>
          h("li", {}, h("div", { class: "result-head" }, h("a", { href: artistHref(a.value) }, a.label),
            h("span", { class: "sub" }, a.sub))))),
      );
    } catch (error) {
      results.replaceChildren(alertBox(error));
    }
  }
  main.append(
    h("h1", {}, "Find similar artists"),
    h("p", { class: "note" }, "Type a name, pick an artist, and see who is like them and why."),
    h("form", { role: "search", onsubmit: listAll }, combo.wrap,
      h("div", { class: "row" }, h("button", { type: "submit" }, "Search"))),
    results,
  );
  combo.input.focus();
}

async function artistPage(main, artistId) {
  const params = new URLSearchParams(location.search);
  const state = {
    k: 20,
    offset: Number(params.get("offset") || 0),
    order: params.get("order") || "similar",
    min: params.get("min_popularity") || "",
    modalities: (params.get("modalities") || "").split(",").filter(Boolean),
  };
  let artist;
  try {
    artist = await api(`/artists/${encodeURIComponent(artistId)}`);
  } catch (error) {
    main.append(h("h1", {}, "Artist"), alertBox(error));
    return;
  }
  document.title = `${artist.name}: similar artists (cmar)`;
  const list = h("section", { "aria-busy": "false" });
  const order = h("select", { id: "order" },
    h("option", { value: "similar" }, "most similar first"),
    h("option", { value: "dissimilar" }, "least similar first"));
  order.value = state.order;
  const min = h("input", { id: "min-popularity", type: "number", min: "0", step: "any", value: state.min,
    inputmode: "decimal" });
  let served = ["audio", "cf", "tag"];
  try {
    served = (await api("/readyz")).modalities;
  } catch (_) {
    // keep the registry's names
  }
  const boxes = served.map((m) =>
    h("label", {}, h("input", { type: "checkbox", value: m, checked: state.modalities.includes(m) }), m));
  const form = h(
    "form",
    { onsubmit: (event) => { event.preventDefault(); state.offset = 0; load(); } },
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "order" }, "Order"), order),
      h("div", {}, h("label", { for: "min-popularity" }, "Minimum popularity"), min)),
    h("fieldset", {}, h("legend", {}, "Only artists with these modalities"), boxes),
    h("button", { type: "submit" }, "Apply"),
  );
  const prev = h("button", { type: "button", class: "quiet",
    onclick: () => { state.offset = Math.max(0, state.offset - state.k); load(); } }, "Previous");
  const next = h("button", { type: "button", class: "quiet", onclick: () => { state.offset += state.k; load(); } },
    "Next");
  const where = h("span", { class: "note", role: "status" });

  async function load() {
    state.order = order.value;
    state.min = min.value;
    state.modalities = boxes.map((b) => b.firstChild).filter((c) => c.checked).map((c) => c.value);
    const query = new URLSearchParams({ k: state.k, explain: "true", offset: state.offset, order: state.order });
    if (state.min !== "") query.set("min_popularity", state.min);
    if (state.modalities.length) query.set("modalities", state.modalities.join(","));
    list.setAttribute("aria-busy", "true");
    try {
      const body = await api(`/artists/${encodeURIComponent(artistId)}/similar?${query}`);
      const shown = body.results.length;
      const total = body.total === undefined ? null : body.total;
      where.textContent = shown
        ? `${state.offset + 1} to ${state.offset + shown}${total === null ? "" : ` of ${total}`}`
        : "no artist passes these filters";
      prev.disabled = state.offset === 0;
      next.disabled = shown < state.k || (total !== null && state.offset + shown >= total) ||
        state.offset + state.k > MAX_OFFSET;
      list.replaceChildren(resultList(body.results, state.offset + 1));
    } catch (error) {
      list.replaceChildren(alertBox(error));
    }
    list.setAttribute("aria-busy", "false");
  }

  main.append(
    h("h1", {}, artist.name),
    h("p", {}, artist.modalities.map((m) => h("span", { class: "badge" }, m)),
      artist.popularity === null || artist.popularity === undefined ? null
        : h("span", { class: "note" }, ` popularity ${Math.round(artist.popularity)}`),
      " · ", h("a", { href: `${ROOT}/ui/map?artist=${encodeURIComponent(artistId)}` }, "See on the map")),
    h("h2", {}, "Similar artists"),
    form,
    h("div", { class: "pager" }, prev, next, where),
    list,
  );
  await load();
}

function vectorOf(text, name) {
  const parts = text.trim().replace(/^\[|\]$/g, "").split(/[\s,]+/).filter(Boolean);
  const numbers = parts.map(Number);
  const bad = parts.findIndex((p, i) => !Number.isFinite(numbers[i]));
  if (bad >= 0) throw new ApiError(0, `${name}: ${JSON.stringify(parts[bad])} is not a number`);
  return numbers;
}

async function coldStartPage(main) {
  let modalities = ["tag"];
  try {
    modalities = (await api("/readyz")).modalities;
  } catch (error) {
    main.append(alertBox(error));
  }
  const chosen = new Map();
  const tagList = h("ul", { class: "tags", "aria-label": "Tags of the query" });
  const answer = h("section", {});
  let weightCount = 0;
  document.title = "cmar: describe a new artist";

  function drawTags() {
    tagList.replaceChildren(...[...chosen.entries()].map(([tag, weight]) => {
      weightCount += 1;
      const id = `weight-${weightCount}`;
      const input = h("input", { id, type: "number", min: "0.001", step: "any", value: weight,
        inputmode: "decimal", oninput: (e) => chosen.set(tag, e.target.value) });
      return h("li", {}, h("label", { for: id, class: "sub" }, tag), input,
        h("button", { type: "button", class: "quiet", "aria-label": `Remove tag ${tag}`,
          onclick: () => {
            chosen.delete(tag);
            drawTags();
            (tagList.querySelector("button") || combo.input).focus();  // not lost to the page
          } }, "×"));
    }));
  }

  const combo = combobox({
    label: "Add a tag",
    id: "tag-input",
    placeholder: "e.g. the beginning of a genre",
    fetchItems: async (text) => {
      const body = await api(`/tags?q=${encodeURIComponent(text)}&limit=10`);
      return body.results.map((t) => ({ label: t.tag, value: t.tag,
        sub: t.artists === null ? t.modality : `${t.artists} artists` }));
    },
    onPick: (item, input) => {
      chosen.set(item.value, chosen.get(item.value) || 1);
      input.value = "";
      drawTags();
      input.focus();
    },
  });
  const vectorInputs = modalities.filter((m) => m !== "tag").map((m) =>
    h("div", {}, h("label", { for: `vector-${m}` }, `${m} vector (numbers separated by commas or spaces)`),
      h("textarea", { id: `vector-${m}`, "data-modality": m, spellcheck: "false" })));
  const k = h("input", { id: "k", type: "number", min: "1", max: "1000", value: "10", inputmode: "numeric" });

  async function submit(event) {
    event.preventDefault();
    const body = { k: Number(k.value), explain: true };
    try {
      if (chosen.size) {
        body.tag = Object.fromEntries([...chosen.entries()].map(([t, w]) => [t, Number(w)]));
      }
      for (const area of vectorInputs.map((d) => d.querySelector("textarea"))) {
        if (area.value.trim()) body[area.dataset.modality] = vectorOf(area.value, area.dataset.modality);
      }
      const found = await api("/similar", { json: body });
      answer.replaceChildren(...[
        h("h2", { role: "status" }, `Similar to this description (from ${found.modalities.join(" + ")})`),
        h("p", { class: "note" }, "Ranked by similarity with a small preference for popular artists, which a few " +
          "tags or audio alone cannot tell; so a lower score can rank higher."),
        found.unknown_tags.length
          ? h("p", { class: "note" }, `Not in the model's vocabulary, ignored: ${found.unknown_tags.join(", ")}`)
          : null,
        resultList(found.results),
      ].filter(Boolean));
    } catch (error) {
      answer.replaceChildren(alertBox(error));
    }
  }

  main.append(
    h("h1", {}, "Describe a new artist"),
    h("p", { class: "note" }, "Give a few weighted tags, or paste the embeddings you have; any subset works."),
    h("form", { id: "cold-start", onsubmit: submit },
      combo.wrap, tagList, vectorInputs,
      h("div", { class: "row" }, h("div", {}, h("label", { for: "k" }, "Results"), k),
        h("button", { type: "submit" }, "Find similar artists"))),
    answer,
  );
}

// ---- the map ----

async function mapPage(main) {
  document.title = "cmar: map of the artists";
  main.append(h("h1", {}, "Map of the artists"));
  let first;
  try {
    first = await api("/map?limit=10000");
  } catch (error) {
    main.append(...[error.status === 404 ? h("p", {}, "This service has no map to show.") : null, alertBox(error)]
      .filter(Boolean));
    return;
  }
  const points = [...first.points];
  while (points.length < first.total) {
    const page = await api(`/map?limit=10000&offset=${points.length}`);
    if (!page.points.length) break;
    points.push(...page.points);
  }
  const byId = new Map(points.map((p, i) => [p.artist_id, i]));
  const kept10 = first.preservation && first.preservation["10"];
  const placedBy = first.placed_by_neighbours
    ? ` ${first.placed_by_neighbours} of them are not in the map folder and sit at the median of their nearest ` +
      "mapped artists."
    : "";
  const stale = first.drawn_for_served_index !== false ? "" : " This map was drawn for another index than the one " +
    "served now: positions and the share kept are those of its own index.";
  const unplaced = first.unplaced_total ? ` ${first.unplaced_total} served artists cannot be placed: the map holds ` +
    "none of the served artists (was it drawn for another index?)." : "";
  main.append(h("p", { class: "note" },
    `${points.length} artists on a ${first.method} map (seed ${first.seed}) drawn from ${first.source}.`,
    kept10 === undefined ? "" : ` Where it was drawn it kept ${Math.round(kept10 * 100)}% of an artist's 10 ` +
      "nearest neighbours among its 10 nearest points.", placedBy, stale, unplaced));
  if (!points.length) return;

  const canvas = h("canvas", { width: 900, height: 640, role: "img",
    "aria-label": "Map of the served artists; choose an artist with the search box to highlight its neighbours" });
  const tip = h("div", { class: "tip", hidden: true });
  const status = h("div", { "aria-live": "polite", id: "map-status" });
  const legend = h("div", { class: "legend" },
    h("span", {}, h("span", { class: "dot selected" }), "selected"),
    h("span", {}, h("span", { class: "dot kept-dot" }), "true neighbour, near on the map"),
    h("span", {}, h("span", { class: "dot lost-dot" }), "true neighbour, far on the map"),
    h("span", {}, h("span", { class: "dot map-dot" }), "near on the map only"));
  const combo = combobox({
    label: "Find an artist on the map",
    id: "map-search",
    placeholder: "a name",
    fetchItems: (text) => findArtists(text),
    onPick: (item, input) => {
      input.value = item.label;
      select(item.value);
    },
  });
  main.append(combo.wrap, legend, h("div", { class: "map-wrap" }, canvas, tip), status);

  const [x0, y0, x1, y1] = first.bounds;  // every placed artist's box (no spread of 100,000 arguments)
  let selected = null;
  let truth = [];
  let nearOnMap = [];

  function size() {
    const width = Math.max(280, canvas.parentElement.clientWidth);
    canvas.width = width * devicePixelRatio;
    canvas.height = Math.round(width * 0.7) * devicePixelRatio;
    canvas.style.height = `${Math.round(width * 0.7)}px`;
  }

  function toScreen(p) {
    const pad = 12 * devicePixelRatio;
    const w = canvas.width - 2 * pad;
    const hgt = canvas.height - 2 * pad;
    return [pad + ((p.x - x0) / (x1 - x0 || 1)) * w, pad + (1 - (p.y - y0) / (y1 - y0 || 1)) * hgt];
  }

  function dot(ctx, p, radius, color) {
    const [x, y] = toScreen(p);
    ctx.beginPath();
    ctx.arc(x, y, radius * devicePixelRatio, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
  }

  function draw() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const p of points) dot(ctx, p, 1.6, "rgba(90, 90, 110, 0.45)");
    if (selected === null) return;
    const trueSet = new Set(truth);
    for (const i of nearOnMap) if (!trueSet.has(i)) dot(ctx, points[i], 4, "#60a5fa");
    const nearSet = new Set(nearOnMap);
    for (const i of truth) dot(ctx, points[i], 5, nearSet.has(i) ? "#15803d" : "#7c3aed");
    dot(ctx, points[selected], 7, "#c2410c");
  }

  function nearestOnMap(index, n) {
    const p = points[index];
    return points
      .map((q, i) => [i, (q.x - p.x) ** 2 + (q.y - p.y) ** 2])
      .filter(([i]) => i !== index)
      .sort((a, b) => a[1] - b[1] || a[0] - b[0])
      .slice(0, n)
      .map(([i]) => i);
  }

  async function select(artistId) {
    const index = byId.get(artistId);
    if (index === undefined) {
      status.replaceChildren(h("p", { class: "alert", role: "alert" }, `${artistId} is not on the map`));
      return;
    }
    selected = index;
    try {
      const body = await api(`/artists/${encodeURIComponent(artistId)}/similar?k=10`);
      truth = body.results.map((r) => byId.get(r.artist_id)).filter((i) => i !== undefined);
      nearOnMap = nearestOnMap(index, 10);
      const nearSet = new Set(nearOnMap);
      const kept = truth.filter((i) => nearSet.has(i)).length;
      draw();
      status.replaceChildren(
        h("p", { id: "kept-count" }, h("strong", {}, points[index].name), `: the map keeps ${kept} of its ` +
          `${truth.length} nearest neighbours among its ${nearOnMap.length} nearest points.`),
        h("ol", { class: "results", role: "list", "aria-label": "True nearest neighbours" }, truth.map((i) =>
          h("li", {}, h("div", { class: "result-head" },
            h("a", { href: artistHref(points[i].artist_id) }, points[i].name),
            nearSet.has(i) ? h("span", { class: "kept" }, "near on the map")
              : h("span", { class: "lost" }, "far on the map"))))),
      );
      history.replaceState(null, "", `${ROOT}/ui/map?artist=${encodeURIComponent(artistId)}`);
    } catch (error) {
      status.replaceChildren(alertBox(error));
    }
  }

  function pointAt(event) {
    const rect = canvas.getBoundingClientRect();
    const mx = (event.clientX - rect.left) * devicePixelRatio;
    const my = (event.clientY - rect.top) * devicePixelRatio;
    let best = -1;
    const radius = event.pointerType === "touch" || matchMedia("(pointer: coarse)").matches ? 24 : 10;
    let bestDistance = (radius * devicePixelRatio) ** 2;
    points.forEach((p, i) => {
      const [x, y] = toScreen(p);
      const d = (x - mx) ** 2 + (y - my) ** 2;
      if (d < bestDistance) {
        best = i;
        bestDistance = d;
      }
    });
    return best;
  }

  canvas.addEventListener("mousemove", (event) => {
    const i = pointAt(event);
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    const [x, y] = toScreen(points[i]);
    tip.textContent = points[i].name;
    tip.hidden = false;
    const width = canvas.clientWidth;
    const left = Math.min(x / devicePixelRatio + 8, Math.max(0, width - tip.offsetWidth));  // inside the map
    tip.style.left = `${left}px`;
    tip.style.top = `${Math.max(0, y / devicePixelRatio - 24)}px`;
  });
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("click", (event) => {
    const i = pointAt(event);
    if (i >= 0) {
      combo.input.value = points[i].name;
      select(points[i].artist_id);
    }
  });
  window.addEventListener("resize", debounce(() => { size(); draw(); }, 100));
  size();
  draw();
  const wanted = new URLSearchParams(location.search).get("artist");
  if (wanted) {
    combo.input.value = byId.has(wanted) ? points[byId.get(wanted)].name : wanted;
    await select(wanted);
  }
  canvas.dataset.ready = "true";
}

// ---- routing ----

async function route() {
  const main = document.getElementById("main");
  const path = location.pathname.slice(ROOT.length).replace(/^\/ui\/?/, "");
  let page = "search";
  if (path.startsWith("artists/")) page = "artist";
  else if (path === "cold-start") page = "cold-start";
  else if (path === "map") page = "map";
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
  }
  main.replaceChildren();
  if (page === "artist") await artistPage(main, decodeURIComponent(path.slice("artists/".length)));
  else if (page === "cold-start") await coldStartPage(main);
  else if (page === "map") await mapPage(main);
  else searchPage(main);
  document.body.dataset.ready = "true";
}

route();
