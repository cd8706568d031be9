-- The five (symbol, side) pairs with the largest combined volume; ties broken by notional
-- (descending), then symbol and side (ascending).
SELECT symbol, side,
       SUM(volume) AS volume,
       SUM(volume * price) AS notional,
       COUNT(*) AS trades
FROM trades
GROUP BY symbol, side
ORDER BY volume DESC, notional DESC, symbol ASC, side
LIMIT 5
