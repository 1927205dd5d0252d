# Sudoku board validator and a naive backtracking solver

def rows(board):
    return [row for row in board]

def cols(board):
    return [[board[r][c] for r in range(9)] for c in range(9)]

def boxes(board):
    out = []
    for br in range(0, 9, 3):
        for bc in range(0, 9, 3):
            out.append([board[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)])
    return out

def valid_group(group):
    digits = [d for d in group if d != 0]
    return len(digits) == len(set(digits))

def is_valid(board):
    return all(valid_group(g) for g in rows(board) + cols(board) + boxes(board))

def candidates(board, r, c):
    used = set(board[r]) | {board[i][c] for i in range(9)}
    br, bc = 3 * (r // 3), 3 * (c // 3)
    used |= {board[i][j] for i in range(br, br + 3) for j in range(bc, bc + 3)}
    return [d for d in range(1, 10) if d not in used]

def solve(board):
    for r in range(9):
        for c in range(9):
            if board[r][c] == 0:
                for d in candidates(board, r, c):
                    board[r][c] = d
                    if solve(board):
                        return True
                board[r][c] = 0
                return False
    return True

PUZZLE = """
530070000
600195000
098000060
800060003
400803001
700020006
060000280
000419005
000080079
"""

if __name__ == "__main__":
    grid = [[int(ch) for ch in line] for line in PUZZLE.split()]
    print(is_valid(grid))
    solve(grid)
    for line in grid:
        print("".join(map(str, line)))
