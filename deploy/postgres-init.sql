-- The Temporal server keeps its own databases beside ordersaga's.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
