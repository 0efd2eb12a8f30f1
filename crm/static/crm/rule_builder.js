/* The visual rule builder (crm/admin_widgets.py RuleBuilderWidget).
 *
 * Plain JavaScript, no framework: it draws an editor over a hidden input that holds the
 * criteria JSON of crm/rules.py, which the server validates on save. State is the criteria
 * object itself, so keys the editor does not know (params of computed fields) round-trip.
 * Structural changes (field, operator, add, remove) redraw the tree and put the focus back
 * on the control that had it; typing a value only updates the state, so focus stays.
 */
(function () {
  "use strict";

  const NO_VALUE = ["isNull", "isNotNull"];
  const OPERATOR_LABELS = {
    eq: "is", neq: "is not", contains: "contains", in: "is any of",
    gt: "is greater than", gte: "is at least", lt: "is less than", lte: "is at most",
    isNull: "is empty", isNotNull: "is not empty",
  };
  const DATE_LABELS = {
    eq: "is on", neq: "is not on", gt: "is after", gte: "is on or after",
    lt: "is before", lte: "is on or before", isNull: "is not known", isNotNull: "is known",
  };
  const TAG_LABELS = {
    contains: "has the tag", in: "has any of the tags", isNull: "has no tags",
    isNotNull: "has some tag",
  };
  const DEFAULT_OPERATOR = { enum: "eq", tags: "contains", boolean: "eq", id: "eq" };
  let counter = 0;

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child.nodeType ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function isGroup(item) {
    return item !== null && typeof item === "object" && Array.isArray(item.rules);
  }

  function childPath(parent, index) {
    return parent ? `${parent}.rules[${index}]` : `rules[${index}]`;
  }

  function operatorLabel(spec, op) {
    if (spec && (spec.type === "date" || spec.type === "datetime")) return DATE_LABELS[op] || op;
    if (spec && spec.type === "tags") return TAG_LABELS[op] || op;
    return OPERATOR_LABELS[op] || op;
  }

  function listText(value) {
    return Array.isArray(value) ? value.join(", ") : value === null || value === undefined ? "" : String(value);
  }

  function splitList(text, numeric) {
    const parts = text.split(",").map((s) => s.trim()).filter(Boolean);
    return parts.map((s) => (numeric && s !== "" && !Number.isNaN(Number(s)) ? Number(s) : s));
  }

  class RuleBuilder {
    constructor(root) {
      this.root = root;
      this.id = `rb${++counter}`;
      this.input = root.querySelector("[data-rule-builder-input]");
      this.config = JSON.parse(document.getElementById(root.dataset.configId).textContent);
      this.form = root.closest("form");
      this.fields = [];
      this.byName = {};
      this.currency = "";
      this.options = {};
      this.prefix = this.config.error_prefix || "";
      this.errors = this.config.errors || {};
      this.timer = null;
      this.errorSlots = {};
      this.sequence = 0;
      this.rawProblem = "";
      this.state = this.initialState();
      this.drawFrame();
      const tenantInput = this.tenantInput();
      if (tenantInput) {
        tenantInput.addEventListener("change", () => this.loadFields().then(() => this.schedule()));
      }
      this.loadFields().then(() => { if (this.hasRules()) this.schedule(0); });
    }

    // --- state ---------------------------------------------------------------------------
    initialState() {
      const text = this.input.value || "";
      if (!text.trim()) return { combinator: "AND", rules: [] };
      try {
        const parsed = JSON.parse(text);
        if (isGroup(parsed)) return parsed;
        if (parsed === null) return { combinator: "AND", rules: [] };
        if (typeof parsed === "object" && !Array.isArray(parsed) && !Object.keys(parsed).length) {
          return { combinator: "AND", rules: [] };
        }
        this.rawProblem = 'Expected a group: {"combinator": "AND" | "OR", "rules": [...]}.';
      } catch (error) {
        this.rawProblem = "This is not valid JSON: fix it here and apply it.";
      }
      this.rawInitial = text;  // keep what the server got back, untouched, until applied
      return { combinator: "AND", rules: [] };
    }

    hasRules() {
      return this.state.rules.length > 0;
    }

    countItems(group) {
      return group.rules.reduce((n, item) => n + 1 + (isGroup(item) ? this.countItems(item) : 0), 0);
    }

    serialize() {
      return this.hasRules() ? JSON.stringify(this.state) : "{}";
    }

    tenantInput() {
      if (!this.config.tenant_field || !this.form) return null;
      return this.form.querySelector(`[name="${this.config.tenant_field}"]`);
    }

    tenant() {
      const input = this.tenantInput();
      return (input && input.value) || this.config.tenant || "";
    }

    // --- server ----------------------------------------------------------------------------
    async loadFields() {
      const tenant = this.tenant();
      const url = new URL(this.config.fields_url, window.location.href);
      if (tenant) url.searchParams.set("tenant", tenant);
      const loading = (this.loading = (this.loading || 0) + 1);
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (loading !== this.loading) return;  // the tenant changed meanwhile: a newer load
        if (response.ok) {
          const body = await response.json();
          this.fields = body.fields || [];
          this.currency = body.currency || "";
          this.options = body.options || {};
          this.byName = Object.fromEntries(this.fields.map((f) => [f.field, f]));
        }
      } catch (error) {
        this.countOutput.textContent = "Could not load the fields; reload the page.";
      }
      this.render();
    }

    csrf() {
      const field = this.form && this.form.querySelector("[name=csrfmiddlewaretoken]");
      if (field) return field.value;
      const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
      return match ? decodeURIComponent(match[1]) : "";
    }

    schedule(delay) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.count(), delay === undefined ? 400 : delay);
    }

    incomplete(group) {
      for (const item of group.rules) {
        if (isGroup(item)) {
          if (!item.rules.length || this.incomplete(item)) return true;
          continue;
        }
        if (!item.field) return true;
        const spec = this.byName[item.field];
        if (!spec) continue;  // unknown field: the server names the problem
        if (!item.operator) return true;
        if (NO_VALUE.includes(item.operator)) continue;
        const value = item.value;
        if (value === null || value === undefined || value === "") return true;
        if (Array.isArray(value) && !value.length) return true;
        if (typeof value === "number" && Number.isNaN(value)) return true;
        for (const param of spec.params || []) {
          if (param.required && (!item.params || item.params[param.name] === undefined)) return true;
        }
      }
      return false;
    }

    async count() {
      const sequence = ++this.sequence;
      if (!this.hasRules()) {
        this.countOutput.textContent = "Add a rule to see how many match.";
        return;
      }
      if (this.incomplete(this.state)) {
        this.countOutput.textContent = "Finish the rules to see how many match.";
        return;
      }
      this.countOutput.textContent = "Counting…";
      let response;
      let body;
      try {
        response = await fetch(this.config.count_url, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrf() },
          body: JSON.stringify({ tenant: this.tenant(), criteria: this.state }),
          credentials: "same-origin",
        });
        body = await response.json();
      } catch (error) {
        if (sequence === this.sequence) this.countOutput.textContent = "Could not count just now.";
        return;
      }
      if (sequence !== this.sequence) return;  // a newer edit is being counted
      if (response.ok) {
        this.errors = {};
        const n = Number(body.count).toLocaleString("en-GB");
        this.countOutput.textContent = `${n} ${this.config.noun} match`;
      } else {
        this.errors = body.errors || {};
        const tenantProblem = this.errors.tenant || this.errors[this.config.tenant_field];
        this.countOutput.textContent = tenantProblem
          ? tenantProblem.join(" ")
          : "The rules have errors: see the marked rules.";
      }
      this.showErrors();
    }

    // --- changes -------------------------------------------------------------------------
    changed(redraw) {
      if (redraw) this.render();
      this.input.value = this.serialize();
      if (document.activeElement !== this.raw) this.raw.value = JSON.stringify(this.state, null, 2);
      this.rawError.textContent = "";
      this.schedule();
    }

    setField(rule, name) {
      const spec = this.byName[name];
      rule.field = name;
      delete rule.value;
      delete rule.params;
      if (!spec) { delete rule.operator; return; }
      rule.operator = DEFAULT_OPERATOR[spec.type] && spec.operators.includes(DEFAULT_OPERATOR[spec.type])
        ? DEFAULT_OPERATOR[spec.type] : spec.operators[0];
      if (spec.params) {
        rule.params = {};
        for (const param of spec.params) {
          if (param.required && param.type === "number") rule.params[param.name] = 30;
        }
      }
      if (spec.type === "boolean") rule.value = true;
    }

    setOperator(rule, op) {
      const was = rule.operator;
      rule.operator = op;
      if (NO_VALUE.includes(op)) { delete rule.value; return; }
      if (op === "in" && was !== "in") {
        rule.value = rule.value === undefined || rule.value === null || rule.value === "" ? [] : [rule.value];
      } else if (op !== "in" && was === "in") {
        rule.value = Array.isArray(rule.value) && rule.value.length ? rule.value[0] : null;
      } else if (NO_VALUE.includes(was) && op !== "in") {
        const spec = this.byName[rule.field];
        rule.value = spec && spec.type === "boolean" ? true : null;
      }
    }

    // --- drawing -------------------------------------------------------------------------
    drawFrame() {
      this.countOutput = h("output", {
        class: "rb-count", "aria-live": "polite", "data-testid": "rule-count",
        for: this.input.id || null,
      });
      this.tree = h("div", { class: "rb-tree" });
      const rawId = `${this.id}-raw`;
      this.raw = h("textarea", {
        id: rawId, rows: 12, spellcheck: "false", class: "rb-raw-text", "data-testid": "rule-json",
      });
      this.raw.value = this.rawInitial !== undefined ? this.rawInitial : JSON.stringify(this.state, null, 2);
      this.rawError = h("p", { class: "rb-error", role: "alert", text: this.rawProblem });
      const apply = h("button", {
        type: "button", class: "rb-button", "data-testid": "rule-json-apply",
        onclick: () => this.applyRaw(),
        text: "Apply JSON",
      });
      // A disclosure button rather than <details>: the admin theme's own handlers get in
      // the way of <summary> clicks.
      const panelId = `${this.id}-raw-panel`;
      const panel = h("div", { id: panelId, class: "rb-raw-panel", hidden: !this.rawProblem },
        h("label", { for: rawId, class: "rb-label", text: "Criteria JSON" }),
        this.raw, h("div", { class: "rb-raw-actions" }, apply, this.rawError));
      const toggle = h("button", {
        type: "button", class: "rb-button rb-raw-toggle", "aria-controls": panelId,
        "aria-expanded": this.rawProblem ? "true" : "false", "data-testid": "rule-json-toggle",
        onclick: () => {
          const open = toggle.getAttribute("aria-expanded") !== "true";
          toggle.setAttribute("aria-expanded", open ? "true" : "false");
          panel.hidden = !open;
          if (open && this.rawInitial === undefined) {
            this.raw.value = JSON.stringify(this.state, null, 2);
          }
        },
        text: "Rules as JSON (for power users)",
      });
      this.rawBox = h("div", { class: "rb-raw" }, toggle, panel);
      this.root.append(
        h("div", { class: "rb-status" }, this.countOutput), this.tree, this.rawBox,
      );
      // Enter in a half-typed value should not save the whole form.
      this.tree.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target.tagName === "INPUT") event.preventDefault();
      });
    }

    applyRaw() {
      let parsed;
      try {
        parsed = JSON.parse(this.raw.value || "{}");
      } catch (error) {
        this.rawError.textContent = `Not valid JSON: ${error.message}`;
        return;
      }
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed) && !Object.keys(parsed).length) {
        parsed = { combinator: "AND", rules: [] };
      }
      if (!isGroup(parsed)) {
        this.rawError.textContent = 'Expected a group: {"combinator": "AND" | "OR", "rules": [...]}.';
        return;
      }
      this.state = parsed;
      this.errors = {};
      this.rawInitial = undefined;
      this.changed(true);
    }

    render() {
      const focused = document.activeElement && this.root.contains(document.activeElement)
        ? document.activeElement.dataset.key : null;
      this.errorSlots = {};
      this.tree.replaceChildren(this.drawGroup(this.state, "", 1, null, 0));
      this.showErrors();
      if (focused) {
        const target = this.tree.querySelector(`[data-key="${CSS.escape(focused)}"]`);
        if (target) target.focus();
      }
    }

    showErrors() {
      for (const slot of Object.values(this.errorSlots)) {
        slot.node.replaceChildren();
        for (const control of slot.controls) control.removeAttribute("aria-invalid");
      }
      const paths = Object.keys(this.errorSlots).sort((a, b) => b.length - a.length);
      for (const [key, messages] of Object.entries(this.errors || {})) {
        if (key === this.config.tenant_field) continue;  // shown by the count
        let path = key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
        if (key === this.prefix.replace(/\.$/, "")) path = "";
        const owner = paths.find((p) => p && (path === p || path.startsWith(`${p}.`))) || "";
        const slot = this.errorSlots[owner];
        const part = path === owner ? "" : path.slice(owner ? owner.length + 1 : 0);
        for (const message of messages) {
          slot.node.append(h("li", { "data-error-path": key, text: message }));
        }
        const control = slot.byPart[part.split(".")[0]];
        if (control) control.setAttribute("aria-invalid", "true");
      }
    }

    drawGroup(group, path, depth, parent, index) {
      const legendId = `${this.id}-g-${path || "root"}`;
      const errorsId = `${legendId}-errors`;
      const combinator = h("select", {
        class: "rb-select", "aria-labelledby": legendId, "data-key": `${path}|combinator`,
        "aria-describedby": errorsId,
        onchange: (event) => { group.combinator = event.target.value; this.changed(false); },
      },
      h("option", { value: "AND", text: "all" }), h("option", { value: "OR", text: "any" }));
      combinator.value = group.combinator === "OR" ? "OR" : "AND";
      const items = group.rules.map((item, i) => (isGroup(item)
        ? this.drawGroup(item, childPath(path, i), depth + 1, group, i)
        : this.drawRule(item, childPath(path, i), group, i)));
      const full = this.countItems(this.state) >= this.config.max_rules;
      const addRule = h("button", {
        type: "button", class: "rb-button", "data-key": `${path}|add-rule`, disabled: full,
        "data-testid": "add-rule",
        onclick: () => { group.rules.push({}); this.changed(true); this.focusLast(path, group); },
        text: "+ Rule",
      });
      const addGroup = depth < this.config.max_depth ? h("button", {
        type: "button", class: "rb-button", "data-key": `${path}|add-group`, disabled: full,
        "data-testid": "add-group",
        onclick: () => {
          group.rules.push({ combinator: group.combinator === "AND" ? "OR" : "AND", rules: [{}] });
          this.changed(true);
          this.focusLast(path, group, true);
        },
        text: "+ Group",
      }) : null;
      const remove = parent ? h("button", {
        type: "button", class: "rb-button rb-remove", "data-key": `${path}|remove`,
        "aria-label": "Remove this group",
        onclick: () => this.remove(parent, index, path),
        text: "Remove group",
      }) : null;
      const errors = h("ul", { class: "rb-error", id: errorsId, "data-testid": "group-errors" });
      this.errorSlots[path] = { node: errors, controls: [combinator], byPart: { combinator, rules: null } };
      const heading = h("legend", { id: legendId, class: "rb-legend" },
        parent ? "Group: " : "", "Match people who meet");
      return h("fieldset", {
        class: `rb-group rb-depth-${depth}`, "data-path": path, "data-testid": "rule-group",
      },
      heading,
      h("div", { class: "rb-group-head" }, combinator, h("span", { text: "of these rules" })),
      errors,
      h("div", { class: "rb-items" }, items.length ? items : h("p", { class: "rb-empty", text: "No rules yet." })),
      h("div", { class: "rb-actions" }, addRule, addGroup, remove));
    }

    focusLast(path, group, isNewGroup) {
      const last = childPath(path, group.rules.length - 1);
      const key = isNewGroup ? `${childPath(last, 0)}|field` : `${last}|field`;
      const target = this.tree.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (target) target.focus();
    }

    remove(parent, index, path) {
      parent.rules.splice(index, 1);
      this.changed(true);
      const owner = path.replace(/\.?rules\[\d+\]$/, "");
      const target = this.tree.querySelector(`[data-key="${CSS.escape(`${owner}|add-rule`)}"]`);
      if (target) target.focus();
    }

    drawRule(rule, path, parent, index) {
      const base = `${this.id}-r-${path}`.replace(/[^\w-]/g, "_");
      const errorsId = `${base}-errors`;
      const number = path.match(/\d+/g).map((n) => Number(n) + 1).join(".");
      const spec = this.byName[rule.field];
      const controls = {};

      // field, grouped as the registry groups them
      const fieldSelect = h("select", {
        id: `${base}-field`, class: "rb-select", "data-key": `${path}|field`,
        "data-testid": "rule-field", "aria-describedby": errorsId,
        onchange: (event) => { this.setField(rule, event.target.value); this.changed(true); },
      }, h("option", { value: "", text: "Choose a field…" }));
      const groups = {};
      for (const f of this.fields) {
        if (!groups[f.group]) {
          groups[f.group] = h("optgroup", { label: f.group });
          fieldSelect.append(groups[f.group]);
        }
        groups[f.group].append(h("option", { value: f.field, text: f.label }));
      }
      if (rule.field && !spec) {
        fieldSelect.append(h("option", { value: String(rule.field), text: `${rule.field} (unknown)` }));
      }
      fieldSelect.value = rule.field === undefined ? "" : String(rule.field);
      controls.field = fieldSelect;
      const parts = [this.labelled(`${base}-field`, "Field", fieldSelect)];

      // operator: only those that apply to the field's type
      if (rule.field) {
        const ops = spec ? spec.operators : [];
        const opSelect = h("select", {
          id: `${base}-op`, class: "rb-select", "data-key": `${path}|operator`,
          "data-testid": "rule-operator", "aria-describedby": errorsId,
          onchange: (event) => { this.setOperator(rule, event.target.value); this.changed(true); },
        });
        if (!spec || !ops.includes(rule.operator)) {
          opSelect.append(h("option", { value: rule.operator || "", text: rule.operator || "Choose…" }));
        }
        for (const op of ops) opSelect.append(h("option", { value: op, text: operatorLabel(spec, op) }));
        opSelect.value = rule.operator || "";
        controls.operator = opSelect;
        parts.push(this.labelled(`${base}-op`, "Operator", opSelect));
      }
      if (spec && rule.operator && !NO_VALUE.includes(rule.operator) && spec.operators.includes(rule.operator)) {
        const value = this.drawValue(rule, spec, path, base, errorsId);
        controls.value = value.control;
        parts.push(value.node);
      }
      if (spec && spec.params) {
        const params = this.drawParams(rule, spec, path, base, errorsId);
        controls.params = params.control;
        parts.push(params.node);
      }
      const remove = h("button", {
        type: "button", class: "rb-button rb-remove", "data-key": `${path}|remove`,
        "data-testid": "remove-rule", "aria-label": `Remove rule ${number}`,
        onclick: () => this.remove(parent, index, path),
        text: "Remove",
      });
      const errors = h("ul", { class: "rb-error", id: errorsId, "data-testid": "rule-errors" });
      this.errorSlots[path] = { node: errors, controls: Object.values(controls), byPart: controls };
      return h("div", {
        class: "rb-rule", role: "group", "aria-label": `Rule ${number}`, "data-path": path,
        "data-testid": "rule",
      }, h("div", { class: "rb-rule-controls" }, parts, remove), errors);
    }

    labelled(id, text, control, suffix) {
      return h("span", { class: "rb-control" },
        h("label", { for: id, class: "rb-label", text }),
        suffix ? h("span", { class: "rb-with-unit" }, control, suffix) : control);
    }

    drawValue(rule, spec, path, base, errorsId) {
      const id = `${base}-value`;
      const common = {
        id, "data-key": `${path}|value`, "data-testid": "rule-value", "aria-describedby": errorsId,
      };
      const set = (value) => { rule.value = value; this.changed(false); };
      const choices = spec.type === "enum"
        ? (spec.choices || []).map((c) => ({ value: c, label: c }))
        : spec.type === "id" ? this.options[spec.field] || null : null;

      if (spec.type === "boolean") {
        const select = h("select", { ...common, class: "rb-select",
          onchange: (event) => set(event.target.value === "true") },
        h("option", { value: "true", text: "yes" }), h("option", { value: "false", text: "no" }));
        select.value = rule.value === false ? "false" : "true";
        return { control: select, node: this.labelled(id, "Value", select) };
      }
      if (choices && rule.operator === "in") {
        const chosen = new Set(Array.isArray(rule.value) ? rule.value.map(String) : []);
        const boxes = choices.map((choice, i) => {
          const boxId = `${id}-${i}`;
          const box = h("input", {
            type: "checkbox", id: boxId, value: choice.value, checked: chosen.has(String(choice.value)),
            "data-key": `${path}|value|${i}`, "aria-describedby": errorsId,
            onchange: () => {
              const picked = [...fieldset.querySelectorAll("input:checked")].map((b) => b.value);
              set(picked);
            },
          });
          return h("span", { class: "rb-check" }, box, h("label", { for: boxId, text: choice.label }));
        });
        const fieldset = h("fieldset", { class: "rb-checks", "data-testid": "rule-value" },
          h("legend", { class: "rb-label", text: "Values (any of)" }), boxes);
        return { control: fieldset, node: fieldset };
      }
      if (choices) {
        const select = h("select", { ...common, class: "rb-select",
          onchange: (event) => set(event.target.value || null) },
        h("option", { value: "", text: "Choose…" }),
        choices.map((c) => h("option", { value: c.value, text: c.label })));
        if (rule.value && !choices.some((c) => String(c.value) === String(rule.value))) {
          select.append(h("option", { value: String(rule.value), text: `${rule.value} (unknown)` }));
        }
        select.value = rule.value === null || rule.value === undefined ? "" : String(rule.value);
        return { control: select, node: this.labelled(id, "Value", select) };
      }
      if (spec.type === "date" || spec.type === "datetime") return this.drawDate(rule, spec, path, common, set);
      if (rule.operator === "in") {
        const numeric = spec.type === "number" || spec.type === "money";
        const input = h("input", { ...common, type: "text", class: "rb-input rb-wide",
          placeholder: "a, b, c",
          oninput: (event) => set(splitList(event.target.value, numeric)) });
        input.value = listText(rule.value);
        return { control: input, node: this.labelled(id, "Values (comma-separated)", input) };
      }
      if (spec.type === "number" || spec.type === "money") {
        const money = spec.type === "money";
        const input = h("input", { ...common, type: "number", class: "rb-input",
          step: money ? "0.01" : spec.integer ? "1" : "any", inputmode: "decimal",
          oninput: (event) => set(event.target.value === "" ? null : Number(event.target.value)) });
        input.value = rule.value === null || rule.value === undefined ? "" : String(rule.value);
        const label = money ? `Amount${this.currency ? ` in ${this.currency}` : ""}` : "Value";
        const unit = money && this.currency
          ? h("span", { class: "rb-unit", "aria-hidden": "true", text: this.currency }) : null;
        return { control: input, node: this.labelled(id, label, input, unit) };
      }
      const input = h("input", { ...common, type: "text", class: "rb-input",
        placeholder: spec.type === "id" ? "an id (UUID)" : spec.type === "tags" ? "a tag" : "",
        oninput: (event) => set(event.target.value) });
      input.value = rule.value === null || rule.value === undefined ? "" : String(rule.value);
      return { control: input, node: this.labelled(id, spec.type === "tags" ? "Tag" : "Value", input) };
    }

    drawDate(rule, spec, path, common, set) {
      const value = rule.value;
      let mode = "date";
      if (value && typeof value === "object") mode = "days_from_now" in value ? "days_from_now" : "days_ago";
      else if (typeof value === "string" && value.length > 10) mode = "moment";
      const modeId = `${common.id}-mode`;
      const modeSelect = h("select", { id: modeId, class: "rb-select", "data-key": `${path}|mode`,
        "data-testid": "rule-date-mode", "aria-describedby": common["aria-describedby"],
        onchange: (event) => {
          const next = event.target.value;
          rule.value = next === "date" || next === "moment" ? null : { [next]: 30 };
          this.changed(true);
        } },
      h("option", { value: "date", text: "a date" }),
      h("option", { value: "days_ago", text: "days ago" }),
      h("option", { value: "days_from_now", text: "days from now" }),
      mode === "moment" ? h("option", { value: "moment", text: "a moment (ISO)" }) : null);
      modeSelect.value = mode;
      let input;
      let label;
      if (mode === "date") {
        input = h("input", { ...common, type: "date", class: "rb-input",
          oninput: (event) => set(event.target.value || null) });
        input.value = typeof value === "string" ? value : "";
        label = "Date";
      } else if (mode === "moment") {
        input = h("input", { ...common, type: "text", class: "rb-input rb-wide",
          oninput: (event) => set(event.target.value || null) });
        input.value = value;
        label = "Date and time with offset";
      } else {
        input = h("input", { ...common, type: "number", class: "rb-input rb-narrow", min: "0",
          max: String(this.config.max_relative_days), step: "1", inputmode: "numeric",
          oninput: (event) => {
            const days = event.target.value === "" ? null : Number(event.target.value);
            set(days === null ? null : { [mode]: days });
          } });
        input.value = value[mode] === undefined || value[mode] === null ? "" : String(value[mode]);
        label = mode === "days_ago" ? "Number of days ago" : "Number of days from now";
      }
      const node = h("span", { class: "rb-date" },
        this.labelled(modeId, "Compare with", modeSelect), this.labelled(common.id, label, input));
      return { control: input, node };
    }

    drawParams(rule, spec, path, base, errorsId) {
      rule.params = rule.params || {};
      const params = rule.params;
      const nodes = spec.params.map((param) => {
        const id = `${base}-param-${param.name}`;
        const key = `${path}|params|${param.name}`;
        const update = (raw) => {
          if (raw === "" || raw === null) delete params[param.name];
          else params[param.name] = param.type === "number" ? Number(raw) : raw;
          this.changed(false);
        };
        let control;
        if (param.choices) {
          control = h("select", { id, class: "rb-select", "data-key": key, "aria-describedby": errorsId,
            onchange: (event) => update(event.target.value) },
          h("option", { value: "", text: "any" }),
          param.choices.map((c) => h("option", { value: c, text: c })));
        } else {
          control = h("input", { id, class: `rb-input${param.type === "number" ? " rb-narrow" : ""}`,
            type: param.type === "number" ? "number" : "text", "data-key": key,
            "aria-describedby": errorsId, min: param.type === "number" ? "1" : null,
            oninput: (event) => update(event.target.value) });
        }
        control.value = params[param.name] === undefined ? "" : String(params[param.name]);
        return this.labelled(id, param.label || param.name, control);
      });
      const first = nodes.length ? nodes[0].querySelector("input, select") : null;
      return { control: first, node: h("span", { class: "rb-params" }, nodes) };
    }
  }

  function start() {
    for (const root of document.querySelectorAll("[data-rule-builder]:not([data-ready])")) {
      root.dataset.ready = "true";
      root.ruleBuilder = new RuleBuilder(root);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  window.RuleBuilder = RuleBuilder;
})();
