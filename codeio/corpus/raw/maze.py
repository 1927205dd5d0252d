import random
from collections import deque


class Maze:
    """Grid maze carved by randomized depth-first search."""

    def __init__(self, width, height, seed=None):
        self.width = width
        self.height = height
        self.rng = random.Random(seed)
        self.walls = {(x, y): {"N", "S", "E", "W"} for x in range(width) for y in range(height)}
        self._carve()

    DIRS = {"N": (0, -1, "S"), "S": (0, 1, "N"), "E": (1, 0, "W"), "W": (-1, 0, "E")}

    def _carve(self):
        stack = [(0, 0)]
        visited = {(0, 0)}
        while stack:
            x, y = stack[-1]
            options = []
            for d, (dx, dy, back) in self.DIRS.items():
                nx, ny = x + dx, y + dy
                if (nx, ny) in self.walls and (nx, ny) not in visited:
                    options.append((d, nx, ny, back))
            if not options:
                stack.pop()
                continue
            d, nx, ny, back = self.rng.choice(options)
            self.walls[(x, y)].discard(d)
            self.walls[(nx, ny)].discard(back)
            visited.add((nx, ny))
            stack.append((nx, ny))

    def solve(self):
        start, goal = (0, 0), (self.width - 1, self.height - 1)
        prev = {start: None}
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                break
            for d, (dx, dy, _) in self.DIRS.items():
                if d not in self.walls[cell]:
                    nxt = (cell[0] + dx, cell[1] + dy)
                    if nxt not in prev:
                        prev[nxt] = cell
                        queue.append(nxt)
        path, cell = [], goal
        while cell is not None:
            path.append(cell)
            cell = prev[cell]
        return path[::-1]

    def render(self):
        out = ["+" + "--+" * self.width]
        for y in range(self.height):
            row, floor = "|", "+"
            for x in range(self.width):
                row += "  " + ("|" if "E" in self.walls[(x, y)] else " ")
                floor += ("--" if "S" in self.walls[(x, y)] else "  ") + "+"
            out += [row, floor]
        return "\n".join(out)


if __name__ == "__main__":
    m = Maze(8, 5, seed=42)
    print(m.render())
    print("path length:", len(m.solve()))
