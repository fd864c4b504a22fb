// Tables that stack on narrow screens: each row becomes a small block of "column: value" lines
// (style.css, `.table.stack`), so a wide table never makes a phone scroll sideways. The labels
// come from the table's own header row: every cell gets its column's name as data-label, kept
// up to date as a card replaces its rows.

/** Label the cells of every `table.stack` now and whenever its rows change. */
export function stackTables(root = document) {
  for (const table of root.querySelectorAll('table.stack')) {
    label(table);
    new MutationObserver(() => label(table)).observe(table, { childList: true, subtree: true });
  }
}

function label(table) {
  const head = table.querySelector('tr');
  if (!head || !head.querySelector('th')) return;
  const names = [...head.children].map((c) => c.textContent.trim());
  for (const row of table.querySelectorAll('tr')) {
    if (row === head) continue;
    let col = 0;
    for (const cell of row.children) {
      const name = names[col] || '';
      if (cell.tagName === 'TD' && cell.dataset.label !== name) cell.dataset.label = name;
      col += Number(cell.getAttribute('colspan')) || 1;
    }
  }
}
