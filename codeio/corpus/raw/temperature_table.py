"""Temperature conversions and a printable comparison table."""

ABSOLUTE_ZERO_C = -273.15


def c_to_f(c):
    return c * 9 / 5 + 32


def f_to_c(f):
    return (f - 32) * 5 / 9


def c_to_k(c):
    if c < ABSOLUTE_ZERO_C:
        raise ValueError("below absolute zero")
    return c - ABSOLUTE_ZERO_C


def heat_index(temp_f, humidity):
    """Rothfusz regression (valid above about 80 F)."""
    t, r = temp_f, humidity
    return (-42.379 + 2.04901523 * t + 10.14333127 * r - 0.22475541 * t * r
            - 6.83783e-3 * t * t - 5.481717e-2 * r * r + 1.22874e-3 * t * t * r
            + 8.5282e-4 * t * r * r - 1.99e-6 * t * t * r * r)


def table(start=-10, stop=40, step=10):
    lines = ["{:>6} {:>7} {:>7}".format("C", "F", "K")]
    for c in range(start, stop + 1, step):
        lines.append("{:>6} {:>7.1f} {:>7.2f}".format(c, c_to_f(c), c_to_k(c)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    print("heat index at 90F/60%%: %.1f" % heat_index(90, 60))
