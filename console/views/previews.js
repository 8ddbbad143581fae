// Previews: the deployments of open pull requests, with their URLs per POP.

import { optional } from "../api.js";
import { badge, empty, h, section, sha, table, time } from "../dom.js";
import { inProject } from "./shared.js";

export default {
  title: "Previews",
  events: ["preview", "reconciliation"],
  async load() {
    return (await optional("/previews", { previews: null })).previews;
  },
  render(previews, ctx) {
    if (previews === null) {
      return h(
        "div.view",
        section(
          "Pull-request previews",
          empty("Previews are not available", "This control plane does not serve /api/v1/previews.", "⎇"),
        ),
      );
    }
    const rows = previews.filter(inProject(ctx));
    return h(
      "div.view",
      section(
        `Pull-request previews (${rows.length})`,
        table(
          [
            {
              label: "Pull request",
              cell: (p) =>
                h(
                  "div.stack",
                  h("strong", `#${p.pr}`),
                  h("span.muted.small", p.project),
                  p.fork ? h("span.chip.chip-warn", "fork") : null,
                ),
            },
            {
              label: "Function",
              cell: (p) => h("span.inline", h("strong", p.function), h("span.version", `v${p.version}`)),
            },
            { label: "Head", cell: (p) => sha(p.head_sha) },
            { label: "Status", cell: (p) => badge(p.status) },
            {
              label: "POPs",
              cell: (p) =>
                p.pops?.length
                  ? h(
                      "span.chips",
                      p.pops.map((x) => h("span.chip.chip-pop", x)),
                    )
                  : h("span.muted", "none"),
            },
            {
              label: "URLs",
              cell: (p) =>
                p.urls?.length
                  ? h(
                      "div.urls",
                      p.urls.map((u) =>
                        h(
                          "a",
                          { href: u, target: "_blank", rel: "noopener noreferrer" },
                          u.replace(/^https?:\/\//, ""),
                        ),
                      ),
                    )
                  : h("span.muted", "—"),
            },
            { label: "Created", cell: (p) => time(p.created_at) },
            { label: "Expires", cell: (p) => time(p.expires_at) },
          ],
          rows,
          {
            empty: empty(
              "No open previews",
              "Open a pull request against a project's production branch: each changed function gets a preview URL per POP.",
              "⎇",
            ),
            testid: "previews",
          },
        ),
      ),
    );
  },
};
