"""A tiny bank account model used in an introductory OOP course."""

from datetime import date


class InsufficientFunds(Exception):
    pass


class Account:
    interest_rate = 0.015  # yearly

    def __init__(self, owner, balance=0.0):
        self.owner = owner
        self.balance = balance
        self.history = []

    def deposit(self, amount, when=None):
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.balance += amount
        self.history.append((when or date.today(), "deposit", amount))

    def withdraw(self, amount, when=None):
        if amount > self.balance:
            raise InsufficientFunds("%s has only %.2f" % (self.owner, self.balance))
        self.balance -= amount
        self.history.append((when or date.today(), "withdraw", amount))

    def add_interest(self, months=12):
        gained = self.balance * self.interest_rate * months / 12
        self.balance += gained
        return gained

    def statement(self):
        lines = ["Statement for %s" % self.owner]
        for when, kind, amount in self.history:
            lines.append("%s  %-8s %10.2f" % (when, kind, amount))
        lines.append("balance: %.2f" % self.balance)
        return "\n".join(lines)


class SavingsAccount(Account):
    interest_rate = 0.03
    max_withdrawals = 3

    def __init__(self, owner, balance=0.0):
        super().__init__(owner, balance)
        self.withdrawals = 0

    def withdraw(self, amount, when=None):
        if self.withdrawals >= self.max_withdrawals:
            raise InsufficientFunds("withdrawal limit reached")
        super().withdraw(amount, when)
        self.withdrawals += 1


if __name__ == "__main__":
    acct = SavingsAccount("alice", 100)
    acct.deposit(50)
    acct.withdraw(30)
    print(acct.add_interest(6))
    print(acct.statement())
