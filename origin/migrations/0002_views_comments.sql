-- View counters live apart from articles, so that a batch of counts does
-- not rewrite wide article rows.
CREATE TABLE article_views (
	article_id bigint PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
	views      bigint NOT NULL
);
CREATE INDEX article_views_views ON article_views (views DESC, article_id);

CREATE TABLE comments (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	article_id bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
	author     text NOT NULL,
	body       text NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE INDEX comments_article ON comments (article_id, id DESC);
