"""A differential flame graph (SVG) of one row's Python stacks: each frame as wide as its
bytecodes in the current episode, red where it did more than in the base episode, blue
where it did less, white where it did the same (Brendan Gregg's differential flame graphs).
Hovering a frame shows both counts. No maintained Python library draws a differential
flame graph, and the picture is boxes and labels, so it is drawn here."""

from __future__ import annotations

from html import escape as _escape


def escape(text: str) -> str:
    """``text`` as XML text: markup escaped, and what XML 1.0 takes no character for (control
    characters a name may hold) shown as ``\\xNN``."""
    return _escape("".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text))


WIDTH = 1200
ROW = 16
LEGEND = "width: bytecodes in the current episode; red: more than in the base, blue: fewer"
MIN_PX = 0.5  # frames narrower than this are left out (their bytecodes stay in their parent)


class _Node:
    __slots__ = ("base", "children", "current")

    def __init__(self) -> None:
        self.base = 0
        self.current = 0
        self.children: dict[str, _Node] = {}


def _tree(base: dict[str, int], current: dict[str, int]) -> _Node:
    root = _Node()
    for stacks, side in ((base, "base"), (current, "current")):
        for stack, count in stacks.items():
            node = root
            setattr(node, side, getattr(node, side) + count)
            for frame in stack.split(";"):
                node = node.children.setdefault(frame, _Node())
                setattr(node, side, getattr(node, side) + count)
    return root


def _colour(node: _Node) -> str:
    if node.base == node.current:
        return "rgb(245,245,245)"
    change = (node.current - node.base) / max(node.base, node.current)
    strength = int(235 - 175 * min(abs(change) * 5, 1.0))  # 20% or more: the full colour
    return f"rgb(255,{strength},{strength})" if change > 0 else f"rgb({strength},{strength},255)"


def _depth(node: _Node, scale: float) -> int:
    deeper = [_depth(child, scale) for child in node.children.values() if child.current * scale >= MIN_PX]
    return 1 + max(deeper, default=0)


def differential_svg(base: dict[str, int], current: dict[str, int], title: str) -> str:
    """The SVG document for two folded-stack profiles (``stack -> own count``)."""
    root = _tree(base, current)
    scale = WIDTH / max(root.current, 1)
    height = _depth(root, scale) * ROW + 40
    boxes: list[str] = []

    def draw(name: str, node: _Node, x: float, depth: int) -> None:
        width = node.current * scale
        if width < MIN_PX:
            return
        y = height - (depth + 1) * ROW - 4
        tip = f"{name}: {node.base:,} -> {node.current:,} bytecodes ({node.current - node.base:+,})"
        label = escape(name[: int(width / 7)]) if width > 35 else ""
        boxes.append(
            f'<g><title>{escape(tip)}</title><rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{ROW - 1}" '
            f'fill="{_colour(node)}" stroke="rgb(200,200,200)" stroke-width="0.3"/>'
            f'<text x="{x + 3:.1f}" y="{y + ROW - 4}">{label}</text></g>'
        )
        child_x = x
        for child_name, child in sorted(node.children.items()):
            draw(child_name, child, child_x, depth + 1)
            child_x += child.current * scale

    draw(f"all ({root.base:,} -> {root.current:,} bytecodes)", root, 0.0, 0)
    body = "\n".join(boxes)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="monospace" font-size="11">\n'
        f'<text x="4" y="16" font-size="14">{escape(title)}</text>\n'
        f'<text x="4" y="30" font-size="11">{LEGEND}</text>\n'
        f"{body}\n</svg>\n"
    )
