"""Discrete-event simulation of a single-server queue (M/M/1) with summary stats."""
import heapq
import random
import statistics


def simulate(arrival_rate, service_rate, customers, seed=1):
    rng = random.Random(seed)
    events = []
    t = 0.0
    for i in range(customers):
        t += rng.expovariate(arrival_rate)
        heapq.heappush(events, (t, "arrive", i))
    server_free_at = 0.0
    waits = []
    busy = 0.0
    while events:
        time, kind, cid = heapq.heappop(events)
        if kind == "arrive":
            start = max(time, server_free_at)
            service = rng.expovariate(service_rate)
            waits.append(start - time)
            server_free_at = start + service
            busy += service
    return {
        "mean_wait": statistics.mean(waits),
        "max_wait": max(waits),
        "utilisation": busy / server_free_at if server_free_at else 0.0,
    }


def theory(arrival_rate, service_rate):
    rho = arrival_rate / service_rate
    return {"utilisation": rho, "mean_wait": rho / (service_rate - arrival_rate)}


if __name__ == "__main__":
    for lam in (0.5, 0.8, 0.95):
        sim = simulate(lam, 1.0, 5000)
        print(lam, round(sim["mean_wait"], 3), round(theory(lam, 1.0)["mean_wait"], 3))
