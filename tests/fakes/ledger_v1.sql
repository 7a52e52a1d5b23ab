-- A ledger at schema version 1 with one run ("v1-run", tests/test_ledger.make_run), written by
-- joulemeter at commit 78bb321 (before ledger schema 2) and dumped with sqlite3 iterdump().
BEGIN TRANSACTION;
CREATE TABLE domains (
	run_id VARCHAR NOT NULL, 
	position INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	device VARCHAR NOT NULL, 
	provenance VARCHAR NOT NULL, 
	method VARCHAR NOT NULL, 
	counter_range_j DOUBLE, 
	note TEXT, 
	PRIMARY KEY (run_id, position), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "domains" VALUES('v1-run',0,'gpu:0','gpu','NVIDIA H100 80GB HBM3','counter','NVML total energy counter',NULL,NULL);
INSERT INTO "domains" VALUES('v1-run',1,'cpu:package-0','cpu','Intel Xeon','counter','RAPL package counter',262143.32885,'package domain includes the uncore');
CREATE TABLE energy (
	run_id VARCHAR NOT NULL, 
	position INTEGER NOT NULL, 
	domain VARCHAR NOT NULL, 
	energy_j DOUBLE NOT NULL, 
	provenance VARCHAR NOT NULL, 
	avg_power_w DOUBLE, 
	peak_power_w DOUBLE, 
	idle_power_w DOUBLE, 
	PRIMARY KEY (run_id, position), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "energy" VALUES('v1-run',0,'gpu:0',600.0,'counter',200.0,200.0,60.5);
INSERT INTO "energy" VALUES('v1-run',1,'cpu:package-0',150.0,'counter',50.0,50.0,NULL);
CREATE TABLE gaps (
	run_id VARCHAR NOT NULL, 
	position INTEGER NOT NULL, 
	domain VARCHAR NOT NULL, 
	start_s DOUBLE NOT NULL, 
	end_s DOUBLE, 
	reason TEXT NOT NULL, 
	PRIMARY KEY (run_id, position), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "gaps" VALUES('v1-run',0,'gpu:0',1.0,1.25,'GPU lost');
INSERT INTO "gaps" VALUES('v1-run',1,'cpu:package-0',2.5,NULL,'RAPL unreadable');
CREATE TABLE joulemeter_meta (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "joulemeter_meta" VALUES('schema_version','1');
CREATE TABLE runs (
	id VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	project VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	started_at VARCHAR NOT NULL, 
	ended_at VARCHAR, 
	duration_s DOUBLE, 
	interval_s DOUBLE NOT NULL, 
	host JSON NOT NULL, 
	units JSON NOT NULL, 
	metadata JSON NOT NULL, 
	error TEXT, 
	pid INTEGER, 
	hostname VARCHAR, 
	process_started_at DOUBLE, 
	heartbeat_at VARCHAR, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES('v1-run','resnet-train','default','completed','2026-03-01T12:00:00+00:00','2026-03-01T12:00:03+00:00',3.0,0.5,'{"hostname": "node-1", "gpus": ["NVIDIA H100 80GB HBM3"], "cpu_count": 64}','{"samples": 1024.0, "steps": 16.0}','{"model": "resnet50", "params": 25557032, "accuracy": 0.7613, "variant": {"bits": 8}}',NULL,NULL,NULL,NULL,'2026-12-02T18:05:45.899+00:00');
CREATE TABLE samples (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	t_s DOUBLE NOT NULL, 
	domain VARCHAR NOT NULL, 
	power_w DOUBLE, 
	energy_j DOUBLE, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "samples" VALUES(1,'v1-run',0.0,'gpu:0',200.0,0.0);
INSERT INTO "samples" VALUES(2,'v1-run',0.0,'cpu:package-0',50.0,0.0);
INSERT INTO "samples" VALUES(3,'v1-run',1.0,'gpu:0',200.0,200.0);
INSERT INTO "samples" VALUES(4,'v1-run',1.0,'cpu:package-0',50.0,50.0);
INSERT INTO "samples" VALUES(5,'v1-run',2.0,'gpu:0',200.0,400.0);
INSERT INTO "samples" VALUES(6,'v1-run',2.0,'cpu:package-0',50.0,100.0);
INSERT INTO "samples" VALUES(7,'v1-run',3.0,'gpu:0',200.0,600.0);
INSERT INTO "samples" VALUES(8,'v1-run',3.0,'cpu:package-0',50.0,150.0);
CREATE TABLE tags (
	run_id VARCHAR NOT NULL, 
	position INTEGER NOT NULL, 
	tag VARCHAR NOT NULL, 
	PRIMARY KEY (run_id, position), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "tags" VALUES('v1-run',0,'baseline');
INSERT INTO "tags" VALUES('v1-run',1,'fp32');
CREATE TABLE windows (
	run_id VARCHAR NOT NULL, 
	position INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	path VARCHAR NOT NULL, 
	start_s DOUBLE NOT NULL, 
	end_s DOUBLE, 
	energy_j JSON NOT NULL, 
	units JSON NOT NULL, 
	note TEXT, 
	PRIMARY KEY (run_id, position), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
INSERT INTO "windows" VALUES('v1-run',0,'train','train',0.0,3.0,'{"gpu:0": 600.0, "cpu:package-0": 150.0}','{"samples": 1024.0}',NULL);
INSERT INTO "windows" VALUES('v1-run',1,'epoch-1','train/epoch-1',0.0,1.5,'{"gpu:0": 300.0}','{"samples": 512.0, "steps": 8.0}',NULL);
INSERT INTO "windows" VALUES('v1-run',2,'eval','eval',3.0,NULL,'{}','{}','never closed');
CREATE INDEX ix_runs_started_at ON runs (started_at);
CREATE INDEX ix_runs_project ON runs (project);
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_tags_tag ON tags (tag);
CREATE INDEX ix_samples_run_id ON samples (run_id);
COMMIT;
