/**
 * Clinic transactions switch to agenticpet_app (SET ROLE), which needs membership. A superuser
 * has it implicitly; a managed database's master user (RDS, Aurora) from PostgreSQL 16 on only
 * gets ADMIN OPTION on the roles it creates, not membership, so grant it explicitly.
 */
export default `
DO $$ BEGIN
  EXECUTE format('GRANT agenticpet_app TO %I', current_user);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
`;
